"""PostgresStore against a real PostgreSQL: batches, refusals, outages, reconnection, views.

Each test gets its own freshly created database, dropped afterwards. Without a server on
127.0.0.1:5432 these tests are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest

from simple_gateway.store.base import RowRejected, StoreUnavailable
from simple_gateway.store.postgres import PostgresStore
from simple_gateway.store.registry import open_store
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import (
    check_purges,
    fresh_postgres_database,
    make_file,
    make_record,
    make_row,
    sample_exchanges,
)

VIEWS = ("recent_requests", "usage_by_model_day", "recent_errors")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url)
    store.migrate()
    yield store
    store.close()


def pg_query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def store_backends(url: str, application_name: str = "simple-gateway") -> list[int]:
    """Server process ids of the connections a store has open on the test database."""
    rows = pg_query(
        url,
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s",
        (application_name,),
    )
    return [pid for (pid,) in rows]


def closed_port_url() -> str:
    """A URL whose port nobody listens on: bound once to find a free port, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/gateway"


# Connecting


def test_nothing_connects_before_first_use() -> None:
    store = PostgresStore(closed_port_url())
    store.close()
    assert isinstance(open_store(closed_port_url(), "ignored.db"), PostgresStore)
    assert isinstance(
        open_store(closed_port_url().replace("postgresql:", "postgres:"), "ignored.db"),
        PostgresStore,
    )


def test_an_unreachable_server_is_unavailable() -> None:
    store = PostgresStore(closed_port_url())
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="PostgreSQL"):
            store.write_batch([make_row(1)], [])
    store.close()


def test_connections_carry_the_gateway_settings(store: PostgresStore, pg_url: str) -> None:
    store.count()
    assert len(store_backends(pg_url)) == 1
    parameters = store._connection().get_dsn_parameters()
    assert parameters["connect_timeout"] == "5"
    assert parameters["keepalives"] == "1"
    assert parameters["application_name"] == "simple-gateway"


def test_options_in_the_url_win(pg_url: str) -> None:
    store = PostgresStore(pg_url + "?application_name=custom-name")
    try:
        store.migrate()
        assert len(store_backends(pg_url, "custom-name")) == 1
    finally:
        store.close()


def test_an_invalid_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        PostgresStore("postgresql://user:secret@127.0.0.1/db?no_such_option=1")
    assert "secret" not in str(caught.value)


def test_a_terminated_connection_is_replaced_on_the_next_call(
    store: PostgresStore, pg_url: str
) -> None:
    store.write_batch([make_row(1)], [])
    [backend] = store_backends(pg_url)
    assert pg_query(pg_url, "SELECT pg_terminate_backend(%s, 5000)", (backend,)) == [(True,)]

    with pytest.raises(StoreUnavailable):
        store.write_batch([make_row(2)], [])
    store.write_batch([make_row(2)], [])

    assert store.count() == 2
    [replacement] = store_backends(pg_url)
    assert replacement != backend


def test_an_unmigrated_database_is_unavailable_not_rejecting(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        with pytest.raises(StoreUnavailable, match="requests"):
            store.write_batch([make_row(1)], [])
        store.migrate()
        store.write_batch([make_row(1)], [])
        assert store.count() == 1
    finally:
        store.close()


# Writing


def test_batches_are_written_once_even_when_replayed(store: PostgresStore, pg_url: str) -> None:
    records = [make_record(n, stream=n % 2 == 0) for n in range(50)]
    requests = [r.to_row() for r in records]
    files = [asdict(make_file(r)) for r in records[:10]]

    store.write_batch(requests, files)
    store.write_batch(requests, files)
    store.write_batch(requests[:5], [])

    assert store.count() == 50
    assert pg_query(pg_url, "SELECT count(*) FROM files") == [(10,)]
    [stored] = pg_query(
        pg_url,
        "SELECT started_at, stream, request_headers, cost_usd, request_body_truncated "
        "FROM requests WHERE id = %s",
        (records[0].id,),
    )
    assert stored[0] == datetime.fromtimestamp(records[0].started_at, UTC)
    assert stored[1] is True
    assert stored[2] == records[0].request_headers
    assert stored[3] == Decimal("0.00008470")
    assert stored[4] is False


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("response_text", "before\x00after", "NUL"),
        ("response_body", "half an emoji \ud83d", "surrogates"),
        ("request_headers", '{"x-note": "a\\u0000b"}', "Unicode escape"),
        ("request_headers", "{not json", "json"),
        ("status", 2**40, "out of range"),
        ("started_at", None, "null value"),
        ("response_headers", {"not": "serialised"}, "adapt"),
    ],
)
def test_values_postgres_refuses_are_rejected_and_the_batch_rolled_back(
    store: PostgresStore, pg_url: str, column: str, value: object, message: str
) -> None:
    store.count()
    [backend] = store_backends(pg_url)
    bad = make_row(2)
    bad[column] = value

    with pytest.raises(RowRejected, match=message):
        store.write_batch([make_row(1), bad], [])

    assert store.count() == 0
    store.write_batch([make_row(1)], [])
    assert store.count() == 1
    assert store_backends(pg_url) == [backend]  # the connection was kept


def test_a_refused_row_does_not_quote_the_row_in_the_error(store: PostgresStore) -> None:
    bad = make_row(1, response_text="secret body")
    bad["request_headers"] = '{"authorization": "\\u0000 secret"}'
    with pytest.raises(RowRejected) as caught:
        store.write_batch([bad], [])
    assert "secret" not in str(caught.value)


# Views


def _normalised(value: Any) -> Any:
    """A PostgreSQL value in the form SQLite returns, to compare the two dialects' views."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float):
        return round(float(value), 8)
    return value


def test_views_return_the_same_rows_as_in_sqlite(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    rows = [r.to_row() for r in sample_exchanges()]
    store.write_batch(rows, [])
    sqlite_store = SqliteStore(str(tmp_path / "g.db"))
    try:
        sqlite_store.migrate()
        sqlite_store.write_batch(rows, [])
    finally:
        sqlite_store.close()

    conn = sqlite3.connect(tmp_path / "g.db")
    try:
        for view in VIEWS:
            expected = [
                tuple(_normalised(v) for v in row)
                for row in conn.execute(f"SELECT * FROM {view}").fetchall()
            ]
            actual = [
                tuple(_normalised(v) for v in row)
                for row in pg_query(pg_url, f"SELECT * FROM {view}")
            ]
            assert actual == expected, view
            assert actual, view
    finally:
        conn.close()


def test_recent_errors_uses_the_partial_index(store: PostgresStore, pg_url: str) -> None:
    store.write_batch([make_row(n) for n in range(200)], [])
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute("ANALYZE requests")
            cur.execute("SET enable_seqscan = off")
            cur.execute("EXPLAIN SELECT * FROM recent_errors LIMIT 10")
            plan = "\n".join(line for (line,) in cur.fetchall())
    finally:
        conn.close()
    assert "requests_errors_started_at" in plan


# Purging


def test_purges_remove_requests_and_their_files(store: PostgresStore) -> None:
    check_purges(store)
