"""SqliteStore against real files: batches, error translation, views, purges, processes, speed."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.store import registry
from simple_gateway.store.base import RowRejected, StoreUnavailable
from simple_gateway.store.migrate import discover
from simple_gateway.store.postgres import PostgresStore
from simple_gateway.store.registry import known_schemes, open_store, register_store
from simple_gateway.store.sqlite import (
    CHECKPOINT_EVERY_ROWS,
    FALLBACK_CHECKPOINT_PAGES,
    SqliteStore,
)
from tests.unit.store import (
    check_purges,
    make_file,
    make_record,
    make_row,
    sample_exchanges,
)

WRITERS = 4
ROWS_PER_WRITER = 2_000


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "data" / "gateway.db")


@pytest.fixture
def store(db_path: str) -> Iterator[SqliteStore]:
    store = SqliteStore(db_path)
    store.migrate()
    yield store
    store.close()


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file the way an operator would, with a separate plain connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# Opening


def test_opening_is_lazy_and_configures_the_file(db_path: str) -> None:
    store = SqliteStore(db_path)
    assert not Path(db_path).parent.exists()
    try:
        assert store.migrate() == [m.name for m in discover("sqlite")]
        conn = store._connection()
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in (
                "journal_mode",
                "busy_timeout",
                "synchronous",
                "page_size",
                "wal_autocheckpoint",
            )
        }
    finally:
        store.close()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 10_000,
        "synchronous": 1,  # NORMAL
        "page_size": 16_384,
        "wal_autocheckpoint": FALLBACK_CHECKPOINT_PAGES,
    }


def test_checkpoints_run_in_a_thread_that_close_stops(store: SqliteStore, db_path: str) -> None:
    def checkpoint_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]

    store.write_batch([make_row(n) for n in range(CHECKPOINT_EVERY_ROWS - 1)], [])
    assert checkpoint_threads() == []
    store.write_batch([make_row(CHECKPOINT_EVERY_ROWS)], [])
    assert len(checkpoint_threads()) == 1
    store.close()
    assert checkpoint_threads() == []
    assert query(db_path, "SELECT count(*) FROM requests") == [(CHECKPOINT_EVERY_ROWS,)]


def test_a_store_can_be_used_from_another_thread_than_its_creator(store: SqliteStore) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.write_batch([make_row(1)], [])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert errors == []
    assert store.count() == 1


# Writing


def test_batches_are_written_once_even_when_replayed(store: SqliteStore, db_path: str) -> None:
    records = [make_record(n) for n in range(50)]
    files = [make_file(r) for r in records[:10]]
    requests = [r.to_row() for r in records]
    file_rows = [asdict(f) for f in files]

    store.write_batch(requests, file_rows)
    store.write_batch(requests, file_rows)
    store.write_batch(requests[:5], [])

    assert store.count() == 50
    assert query(db_path, "SELECT count(*) FROM files") == [(10,)]
    stored = query(db_path, "SELECT id, request_id, started_at, cost_usd FROM requests ORDER BY id")
    assert stored[0] == (records[0].id, "req-0", requests[0]["started_at"], 0.0000847)


def test_empty_batches_do_nothing(db_path: str) -> None:
    store = SqliteStore(db_path)
    store.write_batch([], [])
    assert not Path(db_path).exists()
    store.close()


def test_booleans_are_stored_as_integers(store: SqliteStore, db_path: str) -> None:
    store.write_batch([make_row(1, stream=True), make_row(2)], [])
    assert query(db_path, "SELECT stream, typeof(stream) FROM requests ORDER BY id") == [
        (1, "integer"),
        (0, "integer"),
    ]


def test_headers_are_stored_as_json_text(store: SqliteStore, db_path: str) -> None:
    store.write_batch([make_row(1)], [])
    rows = query(
        db_path, "SELECT json_extract(request_headers, '$.\"content-type\"') FROM requests"
    )
    assert rows == [("application/json",)]


def test_nul_bytes_are_stored_verbatim(store: SqliteStore, db_path: str) -> None:
    """SQLite keeps NUL inside TEXT (unlike PostgreSQL), so nothing needs repair here."""
    store.write_batch([make_row(1, response_text="before\x00after")], [])
    assert query(db_path, "SELECT response_text FROM requests") == [("before\x00after",)]


def test_a_lone_surrogate_is_rejected_and_the_batch_is_rolled_back(store: SqliteStore) -> None:
    good = make_row(1)
    bad = make_row(2, response_text="half an emoji \ud83d")
    with pytest.raises(RowRejected, match="surrogates"):
        store.write_batch([good, bad], [])
    assert store.count() == 0
    store.write_batch([good], [])
    assert store.count() == 1


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("response_headers", {"not": "serialised"}, "type 'dict'"),
        ("started_at", None, "NOT NULL"),
        ("bytes_out", 2**70, "too large"),
    ],
)
def test_values_the_database_refuses_are_rejected(
    store: SqliteStore, column: str, value: object, message: str
) -> None:
    row = make_row(1)
    row[column] = value
    with pytest.raises(RowRejected, match=message):
        store.write_batch([row], [])
    assert store.count() == 0


def test_a_value_over_the_length_limit_is_rejected(store: SqliteStore) -> None:
    store._connection().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000)
    with pytest.raises(RowRejected, match="too big"):
        store.write_batch([make_row(1, response_text="x" * 200_000)], [])
    store.write_batch([make_row(1)], [])
    assert store.count() == 1


def test_a_locked_database_is_unavailable_until_released(db_path: str) -> None:
    migrated = SqliteStore(db_path)
    migrated.migrate()
    migrated.close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    store = SqliteStore(db_path, busy_timeout_ms=50)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            store.write_batch([make_row(1)], [])
        holder.execute("ROLLBACK")
        store.write_batch([make_row(1)], [])
        assert store.count() == 1
    finally:
        store.close()
        holder.close()


def test_a_path_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    store = SqliteStore(str(tmp_path / "a-directory.db"))
    with pytest.raises(StoreUnavailable, match="unable to open"):
        store.count()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(StoreUnavailable):
        SqliteStore(str(blocked / "gateway.db")).count()


def test_an_unmigrated_database_is_unavailable_not_rejecting(db_path: str) -> None:
    store = SqliteStore(db_path)
    try:
        with pytest.raises(StoreUnavailable, match="no such table"):
            store.write_batch([make_row(1)], [])
        store.migrate()
        store.write_batch([make_row(1)], [])
        assert store.count() == 1
    finally:
        store.close()


# Views


def test_recent_requests_lists_newest_first_with_a_preview(
    store: SqliteStore, db_path: str
) -> None:
    records = sample_exchanges()
    store.write_batch([r.to_row() for r in records], [])
    rows = query(db_path, "SELECT id, preview FROM recent_requests")
    newest_first = sorted(records, key=lambda r: r.started_at, reverse=True)
    assert [row[0] for row in rows] == [r.id for r in newest_first]
    previews = {row[0]: row[1] for row in rows}
    long_text = records[1].response_text or ""
    assert previews[records[1].id] == long_text[:200]
    without_text = records[2].to_row()["response_body"]
    assert previews[records[2].id] == without_text[:200]
    columns = [c[1] for c in query(db_path, "PRAGMA table_info(recent_requests)")]
    assert columns[:3] == ["started_at", "id", "request_id"]
    assert columns[-1] == "preview"


def test_usage_by_model_day_adds_up(store: SqliteStore, db_path: str) -> None:
    store.write_batch([r.to_row() for r in sample_exchanges()], [])
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute("SELECT * FROM usage_by_model_day")]
    finally:
        conn.close()
    by_key = {(r["day"], r["provider"], r["model"]): r for r in rows}
    assert list(by_key) == [
        ("2026-11-19", "anthropic", "claude-sonnet-4"),
        ("2026-11-19", "openai", "ft:gpt-4o-mini:acme"),
        ("2026-11-19", "openai", "gpt-4o-mini"),
        ("2026-11-18", "openai", "gpt-4o-mini"),
    ]
    first_day = by_key[("2026-11-18", "openai", "gpt-4o-mini")]
    assert first_day["requests"] == 5
    assert first_day["errors"] == 2
    assert first_day["input_tokens"] == 181 * 4
    assert first_day["output_tokens"] == 96 * 4
    assert first_day["unpriced_requests"] == 0  # a priced model: the 500 without usage is no_usage
    assert first_day["cost_usd"] == pytest.approx(0.0000847 * 4)
    assert first_day["avg_duration_ms"] == 1200.0
    claude = by_key[("2026-11-19", "anthropic", "claude-sonnet-4")]
    assert (claude["cached_tokens"], claude["reasoning_tokens"]) == (200, 50)
    assert by_key[("2026-11-19", "openai", "ft:gpt-4o-mini:acme")]["unpriced_requests"] == 1
    assert by_key[("2026-11-19", "openai", "gpt-4o-mini")]["errors"] == 1


def test_recent_errors_lists_failures_newest_first(store: SqliteStore, db_path: str) -> None:
    records = sample_exchanges()
    store.write_batch([r.to_row() for r in records], [])
    rows = query(db_path, "SELECT id, status, outcome, error_kind FROM recent_errors")
    assert rows == [
        (records[7].id, 404, "completed", None),
        (records[4].id, 200, "client_disconnected", "client_disconnected"),
        (records[3].id, 500, "upstream_error", "upstream_status"),
    ]


# Purging


def test_purges_remove_requests_and_their_files(store: SqliteStore) -> None:
    check_purges(store)


def test_purge_before_accepts_any_iso_form_of_the_cutoff(store: SqliteStore) -> None:
    store.write_batch([make_row(0), make_row(100)], [])
    store.purge_before("2026-11-18T12:08:20+01:00")  # BASE_TS + 60 s, written in UTC+1
    assert store.count() == 1


# Several processes


def _write_rows_in_process(path: str, writer: int, barrier: Barrier, errors: Any) -> None:
    store = SqliteStore(path)
    try:
        store.migrate()
        rows = [make_row(writer * ROWS_PER_WRITER + n) for n in range(ROWS_PER_WRITER)]
        barrier.wait()
        for start in range(0, len(rows), 100):
            store.write_batch(rows[start : start + 100], [])
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(repr(exc))
    finally:
        store.close()


def test_processes_writing_one_file_at_once_lose_nothing(db_path: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    errors = ctx.Queue()
    processes = [
        ctx.Process(target=_write_rows_in_process, args=(db_path, w, barrier, errors))
        for w in range(WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    assert [p.exitcode for p in processes] == [0] * WRITERS
    assert query(db_path, "SELECT count(*), count(DISTINCT id) FROM requests") == [(8_000, 8_000)]


# Registry


def test_open_store_defaults_to_sqlite_at_the_given_path(tmp_path: Path) -> None:
    for url in (None, ""):
        store = open_store(url, str(tmp_path / "default.db"))
        assert isinstance(store, SqliteStore)
        assert store.path == str(tmp_path / "default.db")


def test_open_store_reads_sqlite_urls(tmp_path: Path) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/url.db", "ignored.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == f"{tmp_path}/url.db"
    relative = open_store("sqlite:///data/gateway.db", "ignored.db")
    assert isinstance(relative, SqliteStore)
    assert relative.path == "data/gateway.db"
    with pytest.raises(ValueError, match="sqlite:///"):
        open_store("sqlite://", "ignored.db")


def test_open_store_names_unknown_schemes_without_the_rest_of_the_url() -> None:
    with pytest.raises(ValueError) as caught:
        open_store("mysql://user:secret@db/gateway", "ignored.db")
    message = str(caught.value)
    assert "'mysql'" in message
    assert "postgresql" in message and "sqlite" in message
    assert "secret" not in message


def test_stores_register_through_the_same_door(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    opened: list[str] = []

    def memory_store(url: str) -> SqliteStore:
        opened.append(url)
        return SqliteStore(":memory:")

    register_store("testmem", memory_store)
    assert {"postgres", "postgresql", "sqlite", "testmem"} <= set(known_schemes())
    store = open_store("TestMem://anything", "ignored.db")
    assert opened == ["TestMem://anything"]
    try:
        store.migrate()
        store.write_batch([make_row(1)], [])
        assert store.count() == 1
    finally:
        store.close()
    assert not isinstance(store, PostgresStore)
