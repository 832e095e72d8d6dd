"""What to do about a database that cannot be opened: the fix, from the error's message.

The writer logs a store failure once, when the store goes down; with the fix next to the
reason, a person starting the gateway against a database that does not exist yet reads
`createdb ...` instead of a bare driver message. Each rule matches one error's message
(PostgreSQL's or SQLite's, as the stores word them) and fills a template from it.
"""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r'server at "(?P<host>[^"]*)", port (?P<port>\d+) failed: .*'
            r'database "(?P<db>[^"]+)" does not exist',
            re.S,
        ),
        "create it: createdb -h {host} -p {port} {db}  (or CREATE DATABASE {db}; as a user "
        "allowed to), or point DATABASE_URL at an existing database",
    ),
    (
        re.compile(r'database "(?P<db>[^"]+)" does not exist'),
        "create it: createdb {db}  (or CREATE DATABASE {db};), or point DATABASE_URL at an "
        "existing database",
    ),
    (
        re.compile(r'role "(?P<role>[^"]+)" does not exist'),
        "create the user: createuser {role}, or put an existing user in DATABASE_URL",
    ),
    (
        re.compile(r"password authentication failed for user \"(?P<user>[^\"]+)\""),
        "check the password of {user} in DATABASE_URL (or in ~/.pgpass)",
    ),
    (
        re.compile(r'server at "(?P<host>[^"]*)", port (?P<port>\d+) failed: Connection refused'),
        "start PostgreSQL, or fix the host and port in DATABASE_URL "
        "(nothing listens on {host}:{port})",
    ),
    (
        re.compile(r"unable to open database file"),
        "check that the folder of DB_PATH exists or can be created, and is writable by the "
        "user running the gateway",
    ),
    (
        re.compile(r"readonly database"),
        "make DB_PATH (and its folder, for the -wal and -shm files) writable by the user "
        "running the gateway",
    ),
    (
        re.compile(r"database or disk is full|No space left on device"),
        "free disk space where DB_PATH lives; records are kept in the spool meanwhile",
    ),
    (
        re.compile(r"file is not a database"),
        "DB_PATH names a file that is not an SQLite database: point it at a new file",
    ),
)


def advice_for(message: str) -> str | None:
    """The fix for a store error's message, when one is known."""
    for pattern, template in _RULES:
        match = pattern.search(message)
        if match:
            return template.format(**match.groupdict())
    return None
