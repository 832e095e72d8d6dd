"""SqliteStore: records in one SQLite file, shared safely by several processes.

design: every gunicorn worker has its own writer thread and its own SqliteStore on the same
file. WAL lets readers run beside the writer; writers take turns. Each write is one
`BEGIN IMMEDIATE` transaction, which asks for the write lock up front and waits for it (up to
`busy_timeout`) instead of failing halfway with "database is locked" as a deferred transaction
upgrading from read to write can. The connection is opened on first use, in whichever thread
owns the store by then, and is reopened after a failure that made the store unavailable.

Checkpoints (copying the WAL back into the database file, with two fsyncs) cost as much time
as the inserts themselves. Done inside a commit they would halve the writer's throughput, so
a checkpoint thread with its own connection runs them beside the writer, asked for every
CHECKPOINT_EVERY_ROWS rows. SQLite's own automatic checkpoint stays on with a higher
threshold, as a bound on the WAL should the thread fall behind.

The store talks to the standard library's sqlite3 directly: a batch insert is one
`executemany`, and importing sqlite-utils (with what it pulls in) would cost every worker
10-20 MB of memory for nothing the writer uses. sqlite-utils remains the tool for people
querying the file (`sqlite-utils data/gateway.db "select ..."`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from simple_gateway.store import search_index, usage_rollup
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
from simple_gateway.store.migrate import migrate_sqlite

BUSY_TIMEOUT_MS = 10_000
# Rows are 1-3 KB (bodies inline): 16 KiB pages hold several each and cut the write calls and
# checkpoint work per row; the larger cache keeps the index pages of a batch in memory.
PAGE_SIZE = 16_384
CACHE_KIB = 16_384
CHECKPOINT_EVERY_ROWS = 2_000
FALLBACK_CHECKPOINT_PAGES = 4_000

log = logging.getLogger(__name__)

T = TypeVar("T")

# Messages of sqlite3.OperationalError that mean "this data", not "this database, now".
# Every other OperationalError (locked, busy, disk I/O, full, unable to open, readonly,
# a table not migrated yet), like an OSError creating the folder, leaves the batch to be
# retried later.
_REJECTED_MESSAGES = ("too big", "too long")

# Failures that are about the values of a row: what the driver cannot bind or SQLite refuses.
_REJECTED_TYPES: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    UnicodeError,
    OverflowError,
)

_DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, *_REJECTED_TYPES)


class SqliteStore:
    """Records in a SQLite file (WAL, `synchronous=NORMAL`, 10 s busy timeout)."""

    dialect = "sqlite"
    # The driver takes the interpreter lock back after every row of an `executemany`, and a
    # request thread waiting for it loses that race until the batch is in: the writer stores
    # in short turns while exchanges run (records/writer.py). psycopg2 keeps it released for
    # the whole statement, so PostgreSQL batches need no turns.
    holds_interpreter_between_rows = True

    def __init__(
        self,
        path: str,
        migrations_root: Path | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = path
        self._migrations_root = migrations_root
        self._busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None
        self._checkpointer = _Checkpointer(path, busy_timeout_ms)
        self._rows_since_checkpoint = 0

    def migrate(self) -> list[str]:
        return self._run(lambda conn: migrate_sqlite(conn, self._migrations_root))

    def write_batch(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        """Insert both kinds of rows in one transaction; rows whose id is stored are skipped.

        Python booleans bind as the integers 0 and 1.
        """
        if not requests and not files:
            return
        tables = [(table, group_by_columns(rows)) for table, rows in tables_of(requests, files)]

        def write(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                before = usage_rollup.highest_rowid(conn) if requests else None
                for table, groups in tables:
                    for columns, rows in groups:
                        conn.executemany(_insert_sql(table, columns), row_values(columns, rows))
                if before is not None:
                    usage_rollup.add_rows_after(conn, before)

        self._run(write)
        self._rows_since_checkpoint += len(requests) + len(files)
        if self._rows_since_checkpoint >= CHECKPOINT_EVERY_ROWS and self.path != ":memory:":
            self._rows_since_checkpoint = 0
            self._checkpointer.request()

    def index_pending(self, limit: int) -> int:
        """Index up to `limit` rows the search index lacks; the rows still pending after.

        The first look needs no lock: with nothing pending (the usual answer to a search,
        or to an idle writer another process has kept up) it costs two index lookups.
        """

        def index(conn: sqlite3.Connection) -> int:
            if search_index.pending(conn) == 0:
                return 0
            with _write_transaction(conn):
                search_index.index_next(conn, limit)
                return search_index.pending(conn)

        return self._run(index)

    def purge_before(self, cutoff_iso: str) -> list[str]:
        cutoff = utc_iso(cutoff_iso)

        def purge(conn: sqlite3.Connection) -> list[str]:
            with _write_transaction(conn):
                return _purge(conn, "started_at < :cutoff", {"cutoff": cutoff}, ":cutoff")

        return self._run(purge)

    def purge_keep_newest(self, max_rows: int) -> list[str]:
        if max_rows < 0:
            raise ValueError("max_rows must be zero or more")

        def purge(conn: sqlite3.Connection) -> list[str]:
            with _write_transaction(conn):
                newest_dropped = conn.execute(
                    "SELECT started_at, id FROM requests "
                    "ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?",
                    (max_rows,),
                ).fetchone()
                if newest_dropped is None:
                    return []
                started_at, row_id = newest_dropped
                doomed = "(started_at < :s OR (started_at = :s AND id <= :i))"
                return _purge(conn, doomed, {"s": started_at, "i": row_id}, None)

        return self._run(purge)

    def count(self) -> int:
        return self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
        )

    def close(self) -> None:
        self._checkpointer.stop()
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _open(self.path, self._busy_timeout_ms)
        return self._db

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` on the connection, with driver errors translated to StoreErrors."""
        try:
            return operation(self._connection())
        except _DRIVER_ERRORS as exc:
            error = _translate(exc)
            if isinstance(error, StoreUnavailable):
                self._discard()
            raise error from exc

    def _discard(self) -> None:
        try:
            self.close()
        except sqlite3.Error:
            self._db = None


def _open(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    _bind_plain_values()
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # transactions are begun and ended explicitly
        check_same_thread=False,  # one owner at a time, not necessarily the creating thread
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on a new, empty file
        _enter_wal(conn, busy_timeout_ms)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_CHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def _bind_plain_values() -> None:
    """Let the driver bind NULLs and booleans without searching for a way to adapt them.

    For every value that is not exactly an int, float, str or bytearray, the driver looks for
    a registered adapter, then for `__adapt__` and `__conform__` attributes: a record's dozen
    NULLs and flags cost about 1.5 µs a row. A registered adapter is found at once; these
    give what the driver bound anyway (NULL, 1 and 0). The registry belongs to the sqlite3
    module, so they apply to its every connection, with the same results as before.
    """
    sqlite3.register_adapter(bool, int)
    sqlite3.register_adapter(type(None), _null)


def _null(value: None) -> None:
    return None


def _enter_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch a file to WAL, waiting out other processes that hold it meanwhile.

    Changing the journal mode of a fresh file needs it to itself, and SQLite answers
    "database is locked" at once rather than through the busy handler while another
    process holds a lock on it (several workers opening a new file together): so wait
    here, in short steps, for as long as the busy timeout would have.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # another process holds the file; it lets go within milliseconds
        pause = min(pause * 2, 0.1)


class _Checkpointer:
    """A thread, started on first request, that checkpoints the WAL when asked."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:  # asked again after the next rows, it starts anew
            log.warning("cannot open %s to checkpoint it: %s", self._path, exc)
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the writer's own checkpoint still bounds the WAL
                    log.warning("background checkpoint of %s failed: %s", self._path, exc)
        finally:
            conn.close()


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    values = ", ".join("?" * len(columns))
    # Not INSERT OR IGNORE: that would also drop, silently, a row breaking NOT NULL.
    return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT (id) DO NOTHING"


def _purge(
    conn: sqlite3.Connection, doomed: str, params: dict[str, str], created_before: str | None
) -> list[str]:
    deleted = conn.execute(purge_files_sql(doomed, created_before), params).fetchall()
    conn.execute(purge_guardrail_runs_sql(doomed), params)
    conn.execute(purge_attempts_sql(doomed), params)
    conn.execute(f"DELETE FROM requests WHERE {doomed}", params)
    return [path for (path,) in deleted]


def _translate(exc: BaseException) -> StoreError:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        rejected = any(m in message.lower() for m in _REJECTED_MESSAGES)
    else:
        rejected = isinstance(exc, _REJECTED_TYPES)
    if rejected:
        return RowRejected(f"SQLite refused a row: {message}")
    return StoreUnavailable(f"SQLite: {message}")
