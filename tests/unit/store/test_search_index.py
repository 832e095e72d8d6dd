"""SQLite's search index catches up after the inserts, and never holds what requests does not.

Since migration 0006 the FTS5 index is fed by `index_pending`, not by an insert trigger; its
delete and update triggers touch only rows already indexed. Each test checks the index
against the rows themselves: every word search finds exactly the rows holding the word, and
the index's own row total (which a 'delete' of a row it never held would throw off) equals
the number of rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import make_row, sqlite_store_before_0006


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "gateway.db")


@pytest.fixture
def store(db_path: str) -> Iterator[SqliteStore]:
    store = SqliteStore(db_path)
    store.migrate()
    yield store
    store.close()


def row(n: int, word: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A chat exchange whose reply holds `word` (a word no other row of the test holds)."""
    return make_row(n, response_text=f"the reply says {word or f'word{n}'}", **overrides)


def search(path: str, word: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT requests.id FROM requests_fts JOIN requests "
            "ON requests.rowid = requests_fts.rowid WHERE requests_fts MATCH ? ORDER BY 1",
            (f'"{word}"',),
        )
        return [r[0] for r in found]
    finally:
        conn.close()


def index_matches_rows(path: str) -> None:
    """The index holds each row once with its current text, and nothing else."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO requests_fts (requests_fts) VALUES ('integrity-check')")
        stored = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        assert _indexed_row_total(conn) == stored
        texts = conn.execute("SELECT id, response_text FROM requests").fetchall()
    finally:
        conn.close()
    for _, text in texts:
        word = text.split()[-1]
        assert search(path, word) == sorted(i for i, t in texts if t.split()[-1] == word)


def _indexed_row_total(conn: sqlite3.Connection) -> int:
    """FTS5's own count of the rows it holds: the first varint of its averages record."""
    (block,) = conn.execute("SELECT block FROM requests_fts_data WHERE id = 1").fetchone()
    total = 0
    for byte in block[:8]:
        total = (total << 7) | (byte & 0x7F)
        if byte < 0x80:
            return total
    raise AssertionError("a row total of more than 56 bits")


def pending(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        (mark,) = conn.execute("SELECT indexed_rowid FROM requests_fts_progress").fetchone()
        return int(
            conn.execute("SELECT count(*) FROM requests WHERE rowid > ?", (mark,)).fetchone()[0]
        )
    finally:
        conn.close()


def test_rows_are_indexed_by_index_pending_not_by_the_insert(
    store: SqliteStore, db_path: str
) -> None:
    store.write_batch([row(n) for n in range(5)], [])
    assert search(db_path, "word3") == []
    assert store.index_pending(2) == 3
    assert store.index_pending(10) == 0
    assert store.index_pending(10) == 0
    assert search(db_path, "word3") == [make_row(3)["id"]]
    index_matches_rows(db_path)


def test_a_row_deleted_before_it_was_indexed_leaves_the_index_whole(
    store: SqliteStore, db_path: str
) -> None:
    store.write_batch([row(n) for n in range(4)], [])
    store.index_pending(100)
    store.write_batch([row(n) for n in range(10, 14)], [])  # not indexed yet
    store.purge_before(make_row(12)["started_at"])  # takes indexed and unindexed rows
    assert store.count() == 2
    store.index_pending(100)
    index_matches_rows(db_path)
    assert search(db_path, "word11") == []
    assert search(db_path, "word13") == [make_row(13)["id"]]


def test_a_row_written_after_the_newest_rows_were_deleted_is_still_indexed(
    store: SqliteStore, db_path: str
) -> None:
    """SQLite numbers a new row after the highest left, which may be below the mark."""
    store.write_batch([row(n) for n in range(5)], [])
    store.index_pending(100)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DELETE FROM requests WHERE rowid > 2")  # the newest rows, all indexed
    conn.close()
    store.write_batch([row(20)], [])  # takes rowid 3
    assert pending(db_path) == 1
    store.index_pending(100)
    assert search(db_path, "word20") == [make_row(20)["id"]]
    index_matches_rows(db_path)
    store.purge_keep_newest(0)
    index_matches_rows(db_path)


def test_editing_a_row_not_yet_indexed_indexes_its_new_text_once(
    store: SqliteStore, db_path: str
) -> None:
    store.write_batch([row(1), row(2)], [])
    store.index_pending(1)  # row 1 only
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE requests SET response_text = 'the reply says edited1' WHERE rowid = 1")
        conn.execute("UPDATE requests SET response_text = 'the reply says edited2' WHERE rowid = 2")
    conn.close()
    store.index_pending(100)
    assert search(db_path, "word1") == search(db_path, "word2") == []
    assert search(db_path, "edited2") == [make_row(2)["id"]]
    index_matches_rows(db_path)


def test_stores_sharing_a_file_index_every_row_once(db_path: str) -> None:
    setup = SqliteStore(db_path)
    setup.migrate()
    setup.close()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        store = SqliteStore(db_path)
        try:
            for batch in range(20):
                first = worker * 10_000 + batch * 25
                store.write_batch([row(n) for n in range(first, first + 25)], [])
                store.index_pending(30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    last = SqliteStore(db_path)
    try:
        while last.index_pending(100):
            pass
        assert last.count() == 3 * 20 * 25
    finally:
        last.close()
    index_matches_rows(db_path)


def test_a_database_from_before_0006_keeps_its_index_and_goes_on(tmp_path: Path) -> None:
    """Rows the insert trigger indexed stay indexed once; new rows are indexed by catch-up."""
    before = sqlite_store_before_0006(tmp_path, "gateway.db")
    path = before.path
    before.migrate()
    before.write_batch([row(n) for n in range(6)], [])
    before.close()
    assert search(path, "word4") == [make_row(4)["id"]]  # by the trigger of 0005

    store = SqliteStore(path)
    try:
        assert store.migrate() == ["0006_batch_rollup_background_search"]
        assert pending(path) == 0
        assert store.index_pending(100) == 0
        index_matches_rows(path)
        store.write_batch([row(n) for n in range(6, 9)], [])
        assert store.index_pending(100) == 0
        store.purge_keep_newest(4)
        index_matches_rows(path)
        assert search(path, "word8") == [make_row(8)["id"]]
    finally:
        store.close()
