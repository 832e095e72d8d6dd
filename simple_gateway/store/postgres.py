"""PostgresStore: records in PostgreSQL through one psycopg2 connection.

design: the connection is opened on first use and dropped whenever the server could not be
reached or the connection broke (restart, failover, `pg_terminate_backend`), so the next call
opens a fresh one; the caller keeps the failed batch and retries it, which is safe because
inserts skip ids already stored. When PostgreSQL refuses the data itself (a NUL byte, a lone
surrogate, an invalid JSON escape, a value out of range) the transaction is rolled back, the
connection kept, and RowRejected raised so the writer can repair or isolate the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg2  # type: ignore[import-untyped]
import psycopg2.extensions  # type: ignore[import-untyped]
import psycopg2.extras  # type: ignore[import-untyped]
from psycopg2.extensions import connection as PgConnection

from simple_gateway.store.base import (
    Row,
    RowRejected,
    StoreError,
    StoreUnavailable,
    group_by_columns,
    purge_attempts_sql,
    purge_files_sql,
    purge_guardrail_runs_sql,
    row_values,
    tables_of,
    utc_iso,
)
from simple_gateway.store.migrate import migrate_postgres

T = TypeVar("T")

CONNECT_OPTIONS: dict[str, Any] = {
    "application_name": "simple-gateway",
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
PAGE_SIZE = 1000

# ProgrammingErrors that mean the schema is not there yet or not ours to write (the batch can
# wait for a migration or a grant); every other ProgrammingError is about the values.
_SCHEMA_NOT_READY = frozenset(
    {
        "42P01",  # undefined_table
        "42703",  # undefined_column
        "42883",  # undefined_function
        "3F000",  # invalid_schema_name
        "42501",  # insufficient_privilege
    }
)


class PostgresStore:
    """Records in a PostgreSQL database given by a `postgres://` or `postgresql://` URL."""

    dialect = "postgres"

    def __init__(self, url: str, migrations_root: Path | None = None) -> None:
        try:
            given = psycopg2.extensions.parse_dsn(url)
        except psycopg2.Error:
            raise ValueError("the database URL is not a valid PostgreSQL URL") from None
        self._params = {**CONNECT_OPTIONS, **given}  # what the URL says wins
        self._migrations_root = migrations_root
        self._conn: PgConnection | None = None

    def migrate(self) -> list[str]:
        return self._run(lambda conn: migrate_postgres(conn, self._migrations_root))

    def write_batch(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        if not requests and not files:
            return
        groups = [
            (table, columns, rows)
            for table, table_rows in tables_of(requests, files)
            for columns, rows in group_by_columns(table_rows)
        ]

        def write(conn: PgConnection) -> None:
            with conn.cursor() as cur:
                for table, columns, rows in groups:
                    psycopg2.extras.execute_values(
                        cur,
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s "
                        "ON CONFLICT (id) DO NOTHING",
                        row_values(columns, rows),
                        page_size=PAGE_SIZE,
                    )

        self._run(write)

    def index_pending(self, limit: int) -> int:
        """Nothing to do: the server keeps the search index (a GIN index) with every insert."""
        return 0

    def purge_before(self, cutoff_iso: str) -> list[str]:
        params = {"cutoff": utc_iso(cutoff_iso)}
        return self._run(lambda conn: _purge(conn, "started_at < %(cutoff)s", params, "%(cutoff)s"))

    def purge_keep_newest(self, max_rows: int) -> list[str]:
        if max_rows < 0:
            raise ValueError("max_rows must be zero or more")

        def purge(conn: PgConnection) -> list[str]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT started_at, id FROM requests "
                    "ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET %s",
                    (max_rows,),
                )
                newest_dropped = cur.fetchone()
            if newest_dropped is None:
                return []
            started_at, row_id = newest_dropped
            doomed = "(started_at < %(s)s OR (started_at = %(s)s AND id <= %(i)s))"
            return _purge(conn, doomed, {"s": started_at, "i": row_id}, None)

        return self._run(purge)

    def count(self) -> int:
        def count(conn: PgConnection) -> int:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM requests")
                row = cur.fetchone()
            return int(row[0]) if row else 0

        return self._run(count)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def _connection(self) -> PgConnection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(**self._params)
        return self._conn

    def _run(self, operation: Callable[[PgConnection], T]) -> T:
        """Run `operation` in one transaction and commit; driver errors become StoreErrors."""
        try:
            conn = self._connection()
            result = operation(conn)
            conn.commit()
            return result
        except (psycopg2.Error, ValueError) as exc:
            error = _translate(exc)
            if isinstance(error, RowRejected):
                self._rollback()
            else:
                self._discard()
            raise error from exc

    def _rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except psycopg2.Error:
            self._discard()

    def _discard(self) -> None:
        try:
            self.close()
        except psycopg2.Error:
            self._conn = None


def _purge(
    conn: PgConnection, doomed: str, params: dict[str, Any], created_before: str | None
) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(purge_files_sql(doomed, created_before), params)
        paths = [path for (path,) in cur.fetchall()]
        cur.execute(purge_guardrail_runs_sql(doomed), params)
        cur.execute(purge_attempts_sql(doomed), params)
        cur.execute(f"DELETE FROM requests WHERE {doomed}", params)
    return paths


def _translate(exc: BaseException) -> StoreError:
    """The StoreError for a psycopg2 error, or the ValueError psycopg2 raises before sending.

    Only the primary message is kept: PostgreSQL's detail lines quote the offending row,
    which may hold request bodies.
    """
    diag = getattr(exc, "diag", None)
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    message = (diag.message_primary if diag else None) or lines[0]
    if _is_rejected(exc):
        return RowRejected(f"PostgreSQL refused a row: {message}")
    return StoreUnavailable(f"PostgreSQL: {message}")


def _is_rejected(exc: BaseException) -> bool:
    if isinstance(exc, ValueError | psycopg2.DataError | psycopg2.IntegrityError):
        return True
    if isinstance(exc, psycopg2.ProgrammingError):
        return exc.pgcode not in _SCHEMA_NOT_READY
    return False
