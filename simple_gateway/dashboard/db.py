"""Read-only database access for the dashboard: a small pool and a dialect-aware query layer.

design: the dashboard never writes records; it reads the same database the record writers
fill, from any worker. SQLite readers open the file read-only (WAL lets them run beside the
writers); PostgreSQL readers use read-only autocommit sessions. Connections are pooled per
worker (a handful, whatever the number of request threads), and a query borrows one for its
duration. SQL is written once with `?` placeholders; the PostgreSQL dialect rewrites them to
`%s`, and the few statements that differ (full-text search, schema lookups) come from the
`Dialect` object so the query modules hold no if/else over database names.

One exception to read-only: SQLite's search index is fed after the records are stored (see
simple_gateway/store/search_index.py), so before a search the dashboard indexes whatever the
writers have not yet, through a store of its own, and the search sees every stored record.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from simple_gateway.store.base import StoreError
from simple_gateway.store.sqlite import SqliteStore

Row = dict[str, Any]
T = TypeVar("T")
_WORDS = re.compile(r"[^\W_]+")
POOL_SIZE = 4
SCHEMA_TTL_SECONDS = 30.0
SQLITE_BUSY_MS = 5_000
SEARCH_CATCH_UP_SLICE = 5_000  # rows indexed per transaction before a search
SEARCH_CATCH_UP_MAX_SLICES = 1_000

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The records database cannot be read now (missing, not migrated, down)."""


class Dialect(Protocol):
    """What differs between SQLite and PostgreSQL for the dashboard's queries."""

    name: str

    def sql(self, text: str) -> str:
        """`?` placeholders in the dialect's style."""
        ...

    def search_condition(self) -> str:
        """A condition on `requests` matching the parameter (a search string)."""
        ...

    def search_parameter(self, text: str) -> str: ...

    def search_page(
        self,
        select: str,
        conditions: list[str],
        params: list[Any],
        text: str,
        before: str,
        limit: int,
    ) -> tuple[str, list[Any]]:
        """A page of search results, newest first; each row carries its `cursor`."""
        ...

    def exists_table(self) -> str:
        """A query with one parameter (a table name) returning a row if the table exists."""
        ...

    def columns_of(self) -> str:
        """A query with one parameter (a table name) returning its column names."""
        ...


class SqliteDialect:
    name = "sqlite"

    def sql(self, text: str) -> str:
        return text

    def search_condition(self) -> str:
        # Checked row by row (a seek into the index by rowid): cheap for the few rows of a
        # live poll. A page of results goes the other way round, in search_page.
        return (
            "EXISTS (SELECT 1 FROM requests_fts WHERE requests_fts MATCH ? "
            "AND requests_fts.rowid = requests.rowid)"
        )

    def search_page(
        self,
        select: str,
        conditions: list[str],
        params: list[Any],
        text: str,
        before: str,
        limit: int,
    ) -> tuple[str, list[Any]]:
        """Walk the index newest rowid first and join each match: stops after `limit` rows.

        Ordering by id instead would make SQLite collect every match first (seconds for a
        common word in a million rows). Rowids follow insertion, so the order is the order
        records were written; the cursor is a rowid, prefixed with `~`.
        """
        where = ["requests_fts MATCH ?", *conditions]
        args: list[Any] = [self.search_parameter(text), *params]
        if before.startswith("~") and before[1:].isdigit():
            where.append("requests_fts.rowid < ?")
            args.append(int(before[1:]))
        sql = (
            f"SELECT {select}, '~' || requests_fts.rowid AS cursor "
            "FROM requests_fts JOIN requests ON requests.rowid = requests_fts.rowid "
            f"WHERE {' AND '.join(where)} ORDER BY requests_fts.rowid DESC LIMIT ?"
        )
        return sql, [*args, limit]

    def search_parameter(self, text: str) -> str:
        # Each word (a run of letters and digits, as the index's tokenizer splits them)
        # becomes a quoted FTS5 string: no operator in the person's text is interpreted,
        # and all words must match.
        words = _WORDS.findall(text)
        return " ".join(f'"{w}"' for w in words) or '""'

    def exists_table(self) -> str:
        return "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"

    def columns_of(self) -> str:
        return "SELECT name FROM pragma_table_info(?)"


# Must match the expression of the requests_search index in migrations/postgres/0005.
POSTGRES_SEARCH_VECTOR = (
    "to_tsvector('simple'::regconfig, "
    "left(coalesce(request_body, ''), 100000) || ' ' "
    "|| left(coalesce(response_text, response_body, ''), 100000))"
)


class PostgresDialect:
    name = "postgres"

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def search_condition(self) -> str:
        return f"{POSTGRES_SEARCH_VECTOR} @@ plainto_tsquery('simple'::regconfig, ?)"

    def search_parameter(self, text: str) -> str:
        # The same words as on SQLite: "gpt-4o" finds "gpt-4o-mini" on both databases.
        return " ".join(_WORDS.findall(text))

    def search_page(
        self,
        select: str,
        conditions: list[str],
        params: list[Any],
        text: str,
        before: str,
        limit: int,
    ) -> tuple[str, list[Any]]:
        where = [*conditions, self.search_condition()]
        args: list[Any] = [*params, self.search_parameter(text)]
        if before:
            where.append("id < ?")
            args.append(before)
        sql = (
            f"SELECT {select}, id AS cursor FROM requests WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?"
        )
        return sql, [*args, limit]

    def exists_table(self) -> str:
        return "SELECT 1 WHERE to_regclass(?) IS NOT NULL"

    def columns_of(self) -> str:
        return (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?"
        )


class Cursor(Protocol):
    description: Any

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def fetchall(self) -> list[Any]: ...
    def close(self) -> None: ...


@dataclass
class _Schema:
    tables: dict[str, bool]
    columns: dict[str, frozenset[str]]
    read_at: float


class Database:
    """Pooled read-only connections and the dialect to speak to them."""

    def __init__(
        self,
        connect: Callable[[], Any],
        dialect: Dialect,
        size: int = POOL_SIZE,
        catch_up_search: SearchCatchUp | None = None,
    ) -> None:
        self.dialect = dialect
        self._catch_up_search = catch_up_search
        self._connect = connect
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._schema = _Schema({}, {}, 0.0)
        self._schema_lock = threading.Lock()
        self._memo: dict[str, tuple[float, Any]] = {}

    def prepare_search(self) -> None:
        """Let the search index catch up with the stored records, where it can lag (SQLite)."""
        if self._catch_up_search is not None:
            self._catch_up_search()

    def remembered(self, key: str, ttl: float, compute: Callable[[], T]) -> T:
        """`compute()`, reused for `ttl` seconds (results that need not be live to the second)."""
        found = self._memo.get(key)
        if found is not None and time.monotonic() - found[0] < ttl:
            return found[1]  # type: ignore[no-any-return]
        value = compute()
        self._memo[key] = (time.monotonic(), value)
        return value

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._open()
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                if healthy:
                    self._idle.put(conn)
                else:
                    with contextlib.suppress(Exception):
                        conn.close()

    def _open(self) -> Any:
        try:
            return self._connect()
        except Exception as exc:
            raise DatabaseUnavailable(_first_line(exc)) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.connection() as conn:
            cur = conn.cursor()
            try:
                _execute(cur, self.dialect.sql(sql), params)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, map(plain, row), strict=True)) for row in cur.fetchall()]
            finally:
                cur.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[Row]:
        """Rows one by one, fetched `batch` at a time: memory stays bounded however many."""
        with self.connection() as conn:
            cur = _streaming_cursor(conn)
            try:
                _execute(cur, self.dialect.sql(sql), params)
                names: list[str] | None = None
                while True:
                    rows = cur.fetchmany(batch)
                    if not rows:
                        return
                    if names is None:
                        names = [d[0] for d in cur.description]
                    for row in rows:
                        yield dict(zip(names, map(plain, row), strict=True))
            finally:
                cur.close()

    def has_table(self, name: str) -> bool:
        return self._schema_info().tables.setdefault(
            name, self.one(self.dialect.exists_table(), (name,)) is not None
        )

    def columns(self, table: str) -> frozenset[str]:
        info = self._schema_info()
        if table not in info.columns:
            rows = self.query(self.dialect.columns_of(), (table,))
            info.columns[table] = frozenset(next(iter(r.values())) for r in rows)
        return info.columns[table]

    def _schema_info(self) -> _Schema:
        """What tables and columns exist; re-read now and then, as migrations land."""
        with self._schema_lock:
            if time.monotonic() - self._schema.read_at > SCHEMA_TTL_SECONDS:
                self._schema = _Schema({}, {}, time.monotonic())
            return self._schema

    def close(self) -> None:
        if self._catch_up_search is not None:
            self._catch_up_search.close()
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()


def _execute(cur: Any, sql: str, params: Sequence[Any]) -> None:
    try:
        cur.execute(sql, tuple(params))
    except sqlite3.OperationalError as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg2") and _is_unavailable(exc):
            raise DatabaseUnavailable(_first_line(exc)) from exc
        raise


def _is_unavailable(exc: Exception) -> bool:
    import psycopg2  # type: ignore[import-untyped]

    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) or (
        getattr(exc, "pgcode", None) in {"42P01", "42703"}  # schema not migrated yet
    )


def _streaming_cursor(conn: Any) -> Any:
    """A cursor that does not load the whole result: PostgreSQL needs a named (server) cursor."""
    if isinstance(conn, sqlite3.Connection):
        return conn.cursor()
    conn.autocommit = False  # a named cursor lives inside a transaction
    cur = conn.cursor(name=f"dashboard_export_{threading.get_ident()}")
    cur.itersize = 1000
    return _ClosingServerCursor(conn, cur)


class _ClosingServerCursor:
    """A server-side cursor that ends its transaction when closed, returning the connection."""

    def __init__(self, conn: Any, cur: Any) -> None:
        self._conn = conn
        self._cur = cur

    @property
    def description(self) -> Any:
        return self._cur.description

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(sql, params)

    def fetchmany(self, size: int = 1000) -> list[Any]:
        return self._cur.fetchmany(size)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self._cur.close()
        finally:
            self._conn.rollback()
            self._conn.autocommit = True


def plain(value: Any) -> Any:
    """A database value as JSON-ready Python: timestamps as the records' ISO text."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, memoryview | bytes):
        return bytes(value).decode("utf-8", "replace")
    return value


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def open_database(database_url: str | None, sqlite_path: str) -> Database:
    """The dashboard's reader for the records store the settings name; connects lazily."""
    if database_url:
        return Database(lambda: _postgres(database_url), PostgresDialect())
    return Database(
        lambda: _sqlite(sqlite_path), SqliteDialect(), catch_up_search=SearchCatchUp(sqlite_path)
    )


class SearchCatchUp:
    """Indexes the records the writers have not indexed yet, before a search (SQLite).

    One store per worker, opened on the first search and used by one search at a time. A
    failure (a read-only file, a schema not migrated yet) is logged, and the search goes on
    with what the index holds.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._store: SqliteStore | None = None

    def __call__(self) -> None:
        if not Path(self._path).exists():
            return  # nothing stored yet; the search answers that itself
        with self._lock:
            if self._store is None:
                self._store = SqliteStore(self._path, busy_timeout_ms=SQLITE_BUSY_MS)
            try:
                for _ in range(SEARCH_CATCH_UP_MAX_SLICES):
                    if self._store.index_pending(SEARCH_CATCH_UP_SLICE) == 0:
                        return
            except StoreError as exc:
                log.warning("search: could not index the newest records first: %s", exc)
                self._store.close()
                self._store = None

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        Path(path).absolute().as_uri() + "?mode=ro",
        uri=True,
        timeout=SQLITE_BUSY_MS / 1000,
        isolation_level=None,
        check_same_thread=False,  # pooled: used by one thread at a time, not the creator
    )
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    conn.execute("PRAGMA cache_size = -32768")
    return conn


def _postgres(url: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(url, application_name="simple-gateway-dashboard", connect_timeout=5)
    conn.set_session(readonly=True, autocommit=True)
    return conn
