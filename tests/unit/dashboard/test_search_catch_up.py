"""Before a search, the dashboard indexes the records the writers have not (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simple_gateway.dashboard.db import open_database
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import make_row, sqlite_store_before_0006

MATCHES = "SELECT count(*) AS n FROM requests_fts WHERE requests_fts MATCH 'meeting'"


def test_a_search_sees_records_just_written(tmp_path: Path) -> None:
    path = str(tmp_path / "g.db")
    store = SqliteStore(path)
    store.migrate()
    db = open_database(None, path)
    try:
        for first in range(0, 12_000, 500):  # more than one slice of the catch-up
            store.write_batch([make_row(n) for n in range(first, first + 500)], [])
        db.prepare_search()
        assert db.one(MATCHES) == {"n": 12_000}
        assert store.index_pending(10) == 0
    finally:
        store.close()
        db.close()


def test_nothing_to_index_leaves_no_file_behind(tmp_path: Path) -> None:
    db = open_database(None, str(tmp_path / "missing.db"))
    db.prepare_search()
    db.close()
    assert not (tmp_path / "missing.db").exists()


def test_a_database_not_migrated_yet_is_searched_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file still at migration 0005 (an older gateway writing it): its triggers index."""
    store = sqlite_store_before_0006(tmp_path, "g.db")
    path = store.path
    store.migrate()
    store.write_batch([make_row(1)], [])
    store.close()
    db = open_database(None, path)
    try:
        db.prepare_search()
        assert "could not index the newest records first" in caplog.text
        assert db.one(MATCHES) == {"n": 1}
    finally:
        db.close()
