"""A store that cannot be opened is logged with what to do about it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from simple_gateway.store.advice import advice_for
from simple_gateway.store.base import StoreUnavailable
from simple_gateway.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (
            'PostgreSQL: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
            'database "gw" does not exist',
            "createdb -h 127.0.0.1 -p 5432 gw",
        ),
        ('PostgreSQL: FATAL:  role "bob" does not exist', "createuser bob"),
        (
            'PostgreSQL: connection to server at "10.0.0.9", port 5433 failed: Connection refused',
            "nothing listens on 10.0.0.9:5433",
        ),
        ("SQLite: unable to open database file", "folder of DB_PATH"),
        ("SQLite: attempt to write a readonly database", "writable"),
        ("SQLite: database or disk is full", "free disk space"),
    ],
)
def test_known_failures_come_with_their_fix(message: str, fix: str) -> None:
    assert fix in (advice_for(message) or "")


def test_an_unknown_failure_has_no_invented_fix() -> None:
    assert advice_for("SQLite: something new") is None


def test_an_sqlite_file_that_cannot_be_opened_gets_advice(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = SqliteStore(str(blocker / "gateway.db"))
    with pytest.raises((StoreUnavailable, sqlite3.Error, OSError)) as caught:
        store.migrate()
    store.close()
    assert advice_for(str(caught.value)) is not None
