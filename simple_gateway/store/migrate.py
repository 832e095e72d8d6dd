"""Schema migrations: numbered plain SQL files, applied once each, in order.

Files live in `migrations/<dialect>/NNNN_<name>.sql` at the repository root (the package's
`migrations` is a link to it, and an installed package holds a copy) and are never
edited once released. Each applied file is recorded by name (the file name without `.sql`)
in `schema_migrations(name, applied_at)`.

design: every gateway worker migrates at start-up, so several processes may race on a fresh
database. Each migration is applied in its own transaction that first takes the database's
writer lock (SQLite: `BEGIN IMMEDIATE`, waiting up to a generous busy timeout; PostgreSQL: a
transaction-scoped advisory lock on a fixed key), then checks the history, applies the SQL and
writes the history row, and commits all of it together. The loser of the race waits, sees the
history row and skips. SQLite's `executescript` would commit before running the script, so
SQLite scripts are split into statements and run one by one inside the transaction.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection  # type: ignore[import-untyped]

# Inside the package, so an installed copy finds them too; in a checkout this is a link to
# the top-level migrations/ folder, where they are written.
MIGRATIONS_ROOT = Path(__file__).resolve().parents[1] / "migrations"

# Any fixed 64-bit number works; this one is "SGWMIG" in ASCII, unlikely to collide.
ADVISORY_LOCK_KEY = 0x5347_574D_4947
SQLITE_MIGRATION_BUSY_MS = 120_000

_FILE_NAME = re.compile(r"(\d{4})_[A-Za-z0-9_]+\.sql")

_SQLITE_HISTORY = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)
_POSTGRES_HISTORY = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    name: str
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(dialect: str, root: Path | None = None) -> list[Migration]:
    """The migrations of a dialect, in the order they apply."""
    folder = (root or MIGRATIONS_ROOT) / dialect
    if not folder.is_dir():
        raise FileNotFoundError(f"no migrations folder for {dialect!r}: {folder}")
    by_number: dict[str, Path] = {}
    for path in folder.iterdir():
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            continue
        number = match.group(1)
        if number in by_number:
            raise ValueError(f"two migrations numbered {number}: {by_number[number]}, {path}")
        by_number[number] = path
    return [Migration(path.stem, path) for _, path in sorted(by_number.items())]


def sqlite_statements(script: str) -> list[str]:
    """A SQLite script as single statements, leaving `;` inside strings, comments and triggers.

    A chunk is a statement once SQLite's own tokenizer calls it complete; a trailing chunk
    holding only whitespace or comments is dropped.
    """
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    rest = pending[:-1]
    if _has_code(rest):
        statements.append(rest.strip())
    return [s for s in statements if _has_code(s.rstrip(";"))]


def migrate_sqlite(conn: sqlite3.Connection, root: Path | None = None) -> list[str]:
    """Apply pending SQLite migrations on `conn`; the names applied by this call."""
    previous = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout = {max(previous, SQLITE_MIGRATION_BUSY_MS)}")
    try:
        done = _sqlite_history(conn)
        return [
            m.name
            for m in discover("sqlite", root)
            if m.name not in done and _apply_sqlite(conn, m)
        ]
    finally:
        conn.execute(f"PRAGMA busy_timeout = {previous}")


def migrate_postgres(conn: PgConnection, root: Path | None = None) -> list[str]:
    """Apply pending PostgreSQL migrations on `conn` (not in autocommit); the names applied."""
    if conn.autocommit:
        raise ValueError("migrate_postgres needs a connection with autocommit off")
    done = _postgres_history(conn)
    return [
        m.name
        for m in discover("postgres", root)
        if m.name not in done and _apply_postgres(conn, m)
    ]


def _apply_sqlite(conn: sqlite3.Connection, migration: Migration) -> bool:
    statements = sqlite_statements(migration.read())
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_SQLITE_HISTORY)
        seen = conn.execute(
            "SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)
        ).fetchone()
        if seen is None:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, datetime.now(UTC).isoformat(timespec="milliseconds")),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return seen is None


def _apply_postgres(conn: PgConnection, migration: Migration) -> bool:
    script = migration.read()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
            cur.execute(_POSTGRES_HISTORY)
            cur.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (migration.name,))
            seen = cur.fetchone()
            if seen is None:
                cur.execute(script)
                cur.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (migration.name,))
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    return seen is None


def _sqlite_history(conn: sqlite3.Connection) -> set[str]:
    """Names already applied, read without the writer lock (re-checked under it)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return set()
    return {name for (name,) in conn.execute("SELECT name FROM schema_migrations")}


def _postgres_history(conn: PgConnection) -> set[str]:
    """Names already applied, read without the advisory lock (re-checked under it)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            row = cur.fetchone()
            names: set[str] = set()
            if row is not None and row[0]:
                cur.execute("SELECT name FROM schema_migrations")
                names = {name for (name,) in cur.fetchall()}
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    return names


def _has_code(text: str) -> bool:
    """Whether SQL text holds anything besides whitespace and comments."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    return bool(stripped.strip())
