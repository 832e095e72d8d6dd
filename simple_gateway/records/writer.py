"""The writer thread: the one owner of the store in a worker process.

design: request threads hand finished records to `submit`, which never waits on the
database: it puts them on a bounded queue or, when the queue is full, appends them to
the spool itself. One daemon thread takes records off the queue in batches, enriches
them and stores each batch with a single `write_batch` call. While the store is
unavailable, batches go to the spool and the thread reconnects with backoff; once the
store answers again it replays the spool. A batch the database refuses is written row by
row: a refused row is repaired and retried, and one refused even then is stored as a
minimal row with the original kept in the spool directory. Every record is counted once,
as written, spooled or failed; while neither the store nor the spool can take a batch it
waits in memory (bounded), and anything given up is logged with its ids.

The writer shares the worker's interpreter with the request threads, so it converts a
batch in slices of _SLICE records, yields the core after each unless records are piling
up (a request thread woken meanwhile runs first), and while exchanges are in flight
(`busy`) pauses briefly every _PAUSE_EVERY records: a request waiting for the interpreter
lock then gets it at once instead of after the writer's switch interval. Slices of 16
without the yield left the one-connection p99 at 10-13 ms; with it, about 3 ms.

Before a batch the writer also waits, up to _DEFER_MAX, for the worker to have no
exchange in flight, unless a full batch is already waiting: the records of a short burst
are written after it, not during it, and under a steady load batches go out as soon as
they are full. Storing into SQLite is the same: while
exchanges are in flight and no backlog waits, a batch is stored _BUSY_ROWS rows per
transaction with a pause between them. Its driver takes the interpreter lock back after each
row, and a request thread waiting for the lock would otherwise lose every race for it until
the whole batch was in (10-17 ms for 300-500 rows). A store declares
this with `holds_interpreter_between_rows`; PostgreSQL's batches go whole.

The search index (SQLite) is fed after the rows are stored, not by the inserts: the writer
adds _INDEX_SLICE rows at a time when it has nothing else to do (queue empty, no exchange in
flight). Under a load that never lets it idle, it catches up in slices once _INDEX_LAG_ROWS
rows wait or _INDEX_LAG_SECONDS have passed since the index was last complete; with a backlog
of records (a full batch waiting), storing them comes first, up to _INDEX_BACKLOG_LAG_ROWS. A
search catches up by itself, so these only bound what a search would have to index first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from simple_gateway.records.model import Record, iso
from simple_gateway.records.spool import Spool
from simple_gateway.store.advice import advice_for
from simple_gateway.store.base import Row, RowRejected, Store, StoreUnavailable

log = logging.getLogger(__name__)

_BACKOFF_START = 0.5
_BACKOFF_MAX = 5.0
_REPLAY_INTERVAL = 5.0  # how often to look for spool files that other processes left
_MAX_TEXT_BYTES = 8 * 1024 * 1024
_INT64 = (-(2**63), 2**63 - 1)
_SLICE = 4  # records enriched and converted between two chances for requests to run
_PAUSE_EVERY = 16  # records converted between two pauses while exchanges are in flight
_PAUSE = 0.0005  # seconds the writer stands aside after a slice while requests are in flight
_DEFER_MAX = 1.0  # seconds a batch may wait for the worker to be idle (a burst to pass)
_DEFER_STEP = 0.01
_INDEX_SLICE = 500  # rows added to the search index per transaction
_BUSY_ROWS = 32  # rows per transaction, and per index slice, while exchanges are in flight
_INDEX_LAG_ROWS = 5_000  # rows not indexed: catch up even under load
_INDEX_LAG_SECONDS = 30.0  # since the index was last complete: catch up even under load
# With a backlog (a full batch waiting), rows not indexed before catching up anyway: about
# 0.3 s of indexing, while which the queue takes what arrives.
_INDEX_BACKLOG_LAG_ROWS = 50_000
_INDEX_RETRY = 30.0  # after a failure to index, the next try waits this long
_IDENTITY = ("id", "request_id", "started_at", "provider", "method", "path", "status", "outcome")


class WriterObserver(Protocol):
    """Told about the writer's progress (metrics); may be called from any thread."""

    def records_written(self, n: int) -> None: ...

    def records_spooled(self, n: int) -> None: ...

    def records_replayed(self, n: int) -> None: ...

    def records_failed(self, n: int) -> None: ...

    def queue_depth(self, n: int) -> None: ...

    def records_held(self, n: int) -> None: ...

    def search_lag(self, n: int) -> None: ...


class WriterJournal(Protocol):
    """Keeps submitted records until the writer settles them (records/journal.py)."""

    def settled(self, rows: Sequence[Row]) -> None: ...


class _Stop:
    """The sentinel that ends the writer thread."""


class _OutOfTime(Exception):
    """The stop deadline passed during a replay; the rest stays spooled."""


@dataclass
class _Result:
    written: int = 0
    failed: int = 0
    left_requests: list[Row] = field(default_factory=list)
    left_files: list[Row] = field(default_factory=list)
    down: bool = False


class RecordWriter:
    """Stores records off the request path, through one thread per process."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        spool: Spool,
        *,
        enrich: Callable[[Record], None] | None = None,
        observer: WriterObserver | None = None,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        maintenance: Callable[[Store], None] | None = None,
        maintenance_interval: float = 600.0,
        busy: Callable[[], bool] | None = None,
        journal: WriterJournal | None = None,
    ) -> None:
        self._open_store = open_store
        self._spool = spool
        self._enrich = enrich
        self._observer = observer
        self._queue: queue.Queue[Record | _Stop] = queue.Queue(queue_size)
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._maintenance = maintenance
        self._maintenance_interval = maintenance_interval
        self._busy = busy
        self._journal = journal
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # cuts a batch window short: batch full, or stopping
        # Guards everything below it that request threads touch.
        self._lock = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._submitted = 0
        self._settled = 0
        self._counts = {"written": 0, "spooled": 0, "replayed": 0, "failed": 0}
        self._held_count = 0  # records in memory that neither the store nor the spool took
        # Owned by the writer thread.
        self._store: Store | None = None
        self._migrated = False
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = _BACKOFF_START
        self._replay_at = 0.0
        self._maintenance_at = 0.0
        self._stop_seen = False
        self._in_hand: list[Record] = []
        self._search_lag = 0  # rows stored but not in the search index, as last known
        self._indexed_at = 0.0  # when the search index was last complete (or failed)
        self._held: list[tuple[list[Row], list[Row]]] = []
        self._clean_exit = False

    def start(self) -> None:
        """Start the writer thread; call it in the worker process, after the fork."""
        if self._thread is not None:
            return
        self._maintenance_at = time.monotonic() + self._maintenance_interval
        self._indexed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    def submit(self, record: Record) -> None:
        """Hand over a finished record; never blocks on the database."""
        with self._lock:
            self._submitted += 1
            if not self._stopping:
                try:
                    self._queue.put_nowait(record)
                    if self._queue.qsize() >= self._batch_size:
                        self._wake.set()
                    return
                except queue.Full:
                    pass
        self._spill([record], enrich=True)
        if self._stopping and not (self._thread and self._thread.is_alive()):
            self._spool.close()  # let another worker replay it without waiting for our exit

    def flush(self, timeout: float) -> bool:
        """Wait until as many records as were submitted so far are written or spooled."""
        self._wake.set()  # no batch window: the caller is waiting for these
        with self._lock:
            target = self._submitted
            return self._lock.wait_for(lambda: self._settled >= target, timeout)

    def stop(self, timeout: float) -> bool:
        """Drain, write or spool everything, replay the spool, close the store.

        True when the thread finished in time. Otherwise what it had not written yet
        is spooled from the calling thread (possibly twice, which replay ignores).
        """
        with self._lock:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is None:
            return self._rescue()
        with contextlib.suppress(queue.Full):
            self._queue.put(_Stop(), timeout=max(0.0, self._deadline - time.monotonic()))
        self._wake.set()
        thread.join(max(0.0, self._deadline - time.monotonic()))
        if thread.is_alive():
            log.error("writer: not drained within %.1fs; spooling what is left", timeout)
            self._rescue()
            return False
        return self._clean_exit

    def can_keep_records(self) -> bool:
        """Whether a record submitted now would be stored or spooled, not held in memory."""
        if self._store is not None:
            return True
        return self._held_count == 0 and self._spool.writable()

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        return {
            **counts,
            "queue_depth": self._queue.qsize(),
            "held": self._held_count,
            "store_available": self._store is not None,
            "search_lag": self._search_lag,
        }

    def _run(self) -> None:
        self._connect()
        while not self._stop_seen:
            try:
                records = self._collect()
                if records:
                    self._handle(records)
                self._in_hand = []
                self._housekeeping()
                self._index_search(idle=not records and self._idle())
            except Exception:
                log.exception("writer: unexpected error; carrying on")
        try:
            self._drain()
        except Exception:
            log.exception("writer: unexpected error while draining")

    def _collect(self) -> list[Record]:
        try:
            first = self._queue.get(timeout=self._idle_timeout())
        except queue.Empty:
            return []
        if not isinstance(first, _Stop):
            self._stand_aside()
        if not isinstance(first, _Stop) and self._queue.qsize() < self._batch_size:
            # Let the batch gather rather than wake for every record: each wake-up would
            # cost a request thread a switch of the worker's interpreter lock.
            self._wake.wait(self._flush_interval)
            self._wake.clear()
        batch: list[Record] = []
        item = first
        while True:
            if isinstance(item, _Stop):
                self._stop_seen = True
                break
            batch.append(item)
            if len(batch) >= self._batch_size:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        self._in_hand = batch
        self._notify("queue_depth", self._queue.qsize())
        return batch

    def _stand_aside(self) -> None:
        if self._busy is None:
            return
        until = time.monotonic() + _DEFER_MAX
        while (
            self._busy()
            and not self._stopping
            and self._queue.qsize() < self._batch_size
            and time.monotonic() < until
        ):
            time.sleep(_DEFER_STEP)

    def _handle(self, records: list[Record]) -> None:
        requests: list[Row] = []
        files: list[Row] = []
        for start in range(0, len(records), _SLICE):
            part = records[start : start + _SLICE]
            for record in part:
                self._enrich_safely(record)
            part_requests, part_files = _rows_of(part)
            requests += part_requests
            files += part_files
            if self._busy is None:  # no request threads to make way for
                continue
            if self._queue.qsize() < self._batch_size:  # keeping up: requests go first
                _yield_processor()
            if (start + _SLICE) % _PAUSE_EVERY == 0 and self._busy():
                time.sleep(_PAUSE)
        if self._yielding():
            self._deliver_in_turns(requests, files)
        else:
            self._deliver(requests, files)

    def _yielding(self) -> bool:
        """Whether to store in short turns: exchanges are running and nothing is backlogged."""
        return (
            self._busy is not None
            and self._store is not None  # a batch for the spool goes in one append (fsync)
            and getattr(self._store, "holds_interpreter_between_rows", False)
            and self._busy()
            and self._queue.qsize() < self._batch_size
            and not self._stopping
        )

    def _deliver_in_turns(self, requests: list[Row], files: list[Row]) -> None:
        """`_deliver` _BUSY_ROWS request rows (with their files rows) at a time."""
        groups = _groups(requests, files)
        start = 0
        while start < len(groups):
            if start:
                time.sleep(_PAUSE)
            # Once the store is gone the rest goes to the spool in one append, not in turns.
            end = start + _BUSY_ROWS if self._store is not None else len(groups)
            turn = groups[start:end]
            self._deliver(
                [row for row, _ in turn if row is not None], [f for _, own in turn for f in own]
            )
            start = end

    def _deliver(self, requests: list[Row], files: list[Row]) -> None:
        """Store rows if the store is up, spool what it could not take."""
        if not self._connect():
            self._to_spool(requests, files)
            return
        result = self._store_rows(requests, files)
        self._count("written", result.written)
        self._count("failed", result.failed)
        self._set_search_lag(self._search_lag + result.written)
        left = {id(row) for row in result.left_requests}
        self._settle([row for row in requests if id(row) not in left])
        if result.left_requests or result.left_files:
            self._to_spool(result.left_requests, result.left_files)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._held and now >= self._retry_at:
            for requests, files in self._take_held():
                self._deliver(requests, files)
        if self._store is None and now >= self._retry_at:
            self._connect()
        if self._store is not None and now >= self._replay_at:
            self._replay()
        if self._maintenance and self._store is not None and now >= self._maintenance_at:
            self._maintenance_at = now + self._maintenance_interval
            try:
                self._maintenance(self._store)
            except Exception:
                log.exception("writer: maintenance failed")

    def _idle(self) -> bool:
        return self._queue.qsize() == 0 and not (self._busy is not None and self._busy())

    def _index_search(self, *, idle: bool) -> None:
        """Add stored rows to the search index: a slice when idle, more while overdue."""
        if self._store is None or self._search_lag <= 0:
            return
        if time.monotonic() < self._indexed_at or not (idle or self._index_overdue()):
            return
        store = self._store
        while True:
            try:
                lag = store.index_pending(_BUSY_ROWS if self._yielding() else _INDEX_SLICE)
            except Exception as exc:
                log.warning(
                    "writer: search index not updated (%s); next try in %.0fs", exc, _INDEX_RETRY
                )
                self._indexed_at = time.monotonic() + _INDEX_RETRY
                return
            self._set_search_lag(lag)
            if lag == 0:
                self._indexed_at = time.monotonic()
                return
            if self._stopping or not self._index_overdue():
                return
            if self._busy is not None and self._busy():
                time.sleep(_PAUSE)

    def _index_overdue(self) -> bool:
        """Whether the search index must catch up although the writer is not idle."""
        if self._queue.qsize() >= self._batch_size:  # a backlog: storing records comes first
            return self._search_lag >= _INDEX_BACKLOG_LAG_ROWS
        return (
            self._search_lag >= _INDEX_LAG_ROWS
            or time.monotonic() - self._indexed_at >= _INDEX_LAG_SECONDS
        )

    def _set_search_lag(self, n: int) -> None:
        if n != self._search_lag:
            self._search_lag = n
            self._notify("search_lag", n)

    def _idle_timeout(self) -> float:
        due = [self._replay_at, self._maintenance_at]
        if self._store is None or self._held:
            due.append(self._retry_at)
        if self._search_lag > 0:  # the next slice: at once when idle, else when overdue
            busy = self._busy is not None and self._busy()
            due.append(self._indexed_at + (_INDEX_LAG_SECONDS if busy else 0.0))
        return min(max(min(due) - time.monotonic(), 0.01), 1.0)

    def _drain(self) -> None:
        """After the sentinel: everything left goes to the store or the spool."""
        remaining: list[Record] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Stop):
                remaining.append(item)
        for start in range(0, len(remaining), self._batch_size):
            self._in_hand = remaining[start:]
            batch = remaining[start : start + self._batch_size]
            if time.monotonic() < self._deadline:
                self._handle(batch)
            else:
                self._spill(batch, enrich=False)
        self._in_hand = []
        for requests, files in self._take_held():
            self._deliver(requests, files)
        if self._store is not None and time.monotonic() < self._deadline:
            self._replay()
        self._close_store()
        self._spool.close()
        held = self._take_held()
        for requests, _ in held:
            log.error(
                "writer: stopping; records %s could be neither stored nor spooled",
                ", ".join(_row_id(row) for row in requests),
            )
            self._count("failed", len(requests))
            self._settle(requests)
        self._clean_exit = not held

    def _connect(self) -> bool:
        """Open the store (migrating once) unless it is open or the retry is not due."""
        if self._store is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        store: Store | None = None
        try:
            store = self._open_store()
            if not self._migrated:
                applied = store.migrate()
                self._migrated = True
                if applied:
                    log.info("writer: applied migrations %s", ", ".join(applied))
        except Exception as exc:
            self._close_quietly(store)
            self._mark_down(exc)
            return False
        self._store = store
        self._replay_at = time.monotonic()
        return True

    def _store_rows(self, requests: list[Row], files: list[Row]) -> _Result:
        """Write a batch; on refusal row by row. Never raises."""
        assert self._store is not None
        store = self._store
        try:
            store.write_batch(requests, files)
        except RowRejected as exc:
            log.warning("writer: batch of %d refused (%s); writing row by row", len(requests), exc)
        except Exception as exc:
            self._mark_down(exc)
            return _Result(left_requests=requests, left_files=files, down=True)
        else:
            self._mark_up()
            return _Result(written=len(requests))
        result = _Result()
        groups = _groups(requests, files)
        for index, (row, own) in enumerate(groups):
            try:
                stored = self._write_group(store, row, own)
            except Exception as exc:
                self._mark_down(exc)
                for left, left_files in groups[index:]:
                    result.left_requests.extend([left] if left is not None else [])
                    result.left_files.extend(left_files)
                result.down = True
                return result
            if row is not None and stored:
                result.written += 1
            elif row is not None:
                result.failed += 1
        self._mark_up()
        return result

    def _write_group(self, store: Store, row: Row | None, files: list[Row]) -> bool:
        """Store one request row with its files rows: as is, repaired, or as a minimal row."""
        requests = [row] if row is not None else []
        try:
            store.write_batch(requests, files)
            return True
        except RowRejected:
            pass
        try:
            store.write_batch([repair_row(r) for r in requests], [repair_row(f) for f in files])
            log.warning("writer: row %s stored after repair", _row_id(row))
            return True
        except RowRejected as exc:
            error = str(exc)
        log.error("writer: row %s refused even after repair: %s", _row_id(row), error)
        try:
            self._spool.reject(row or {}, files, error)
        except Exception:
            log.exception("writer: could not keep refused row %s: %r", _row_id(row), row)
        if row is not None:
            try:
                store.write_batch([repair_row(minimal_row(row, error))], [])
            except RowRejected:
                log.exception("writer: minimal row for %s refused too", _row_id(row))
        return False

    def _replay(self) -> None:
        self._replay_at = time.monotonic() + _REPLAY_INTERVAL
        try:
            self._spool.replay(self._replay_batch)
        except (StoreUnavailable, _OutOfTime):
            pass
        except Exception:
            log.exception("writer: spool replay failed")

    def _replay_batch(self, requests: list[Row], files: list[Row]) -> None:
        if time.monotonic() >= self._deadline:
            raise _OutOfTime
        self._pump()
        if not self._connect():
            raise StoreUnavailable("store unavailable")
        result = self._store_rows(requests, files)
        self._count("replayed", result.written)
        self._count("failed", result.failed)
        self._set_search_lag(self._search_lag + result.written)
        if result.down:
            raise StoreUnavailable("store went away during replay")

    def _pump(self) -> None:
        """During a long replay, keep live records moving once the queue fills up."""
        if self._queue.qsize() < self._queue_size // 2:
            return
        batch: list[Record] = []
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Stop):
                self._stop_seen = True
            else:
                batch.append(item)
        if batch:
            self._in_hand = batch
            self._handle(batch)
            self._in_hand = []

    def _to_spool(self, requests: list[Row], files: list[Row]) -> None:
        if not requests and not files:
            return
        try:
            self._spool.append(requests, files)
        except Exception:
            log.exception("writer: could not spool %d records; holding them", len(requests))
            self._hold(requests, files)
            return
        self._count("spooled", len(requests))
        self._settle(requests)

    def _hold(self, requests: list[Row], files: list[Row]) -> None:
        """Keep a batch in memory until the store or the spool takes it, within a bound."""
        self._held.append((requests, files))
        while sum(len(r) for r, _ in self._held) > max(self._queue_size, self._batch_size):
            lost, _ = self._held.pop(0)
            log.error(
                "writer: store and spool both failing; dropping records %s",
                ", ".join(_row_id(row) for row in lost),
            )
            self._count("failed", len(lost))
            self._settle(lost)
        self._set_held(sum(len(r) for r, _ in self._held))

    def _take_held(self) -> list[tuple[list[Row], list[Row]]]:
        held, self._held = self._held, []
        self._set_held(0)
        return held

    def _set_held(self, n: int) -> None:
        with self._lock:
            changed = n != self._held_count
            self._held_count = n
        if changed:
            self._notify("records_held", n)

    def _spill(self, records: Sequence[Record], *, enrich: bool) -> bool:
        """Spool records from a thread other than the writer's (a full queue, a stop)."""
        if enrich:
            for record in records:
                self._enrich_safely(record)
        requests, files = _rows_of(records)
        try:
            self._spool.append(requests, files)
        except Exception:
            log.exception(
                "writer: could not spool records %s; they are lost",
                ", ".join(_row_id(row) for row in requests),
            )
            self._count("failed", len(requests))
            self._settle(requests)
            return False
        self._count("spooled", len(requests))
        self._settle(requests)
        return True

    def _rescue(self) -> bool:
        """Spool what the writer has not settled, from the thread calling stop."""
        taken = list(self._in_hand)
        queued: list[Record] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Stop):
                queued.append(item)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_Stop())
        spooled = self._spill(taken, enrich=False) if taken else True
        return (self._spill(queued, enrich=True) if queued else True) and spooled

    def _mark_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            advice = advice_for(str(exc))
            if advice is not None:
                log.error(
                    "writer: store unavailable (%s); spooling and retrying. Fix: %s", exc, advice
                )
            elif isinstance(exc, StoreUnavailable):
                log.warning("writer: store unavailable (%s); spooling and retrying", exc)
            else:
                log.error("writer: store failed; spooling and retrying", exc_info=exc)
        else:
            log.debug("writer: store still unavailable: %s", exc)
        self._close_store()
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.info("writer: store back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
            self._replay_at = time.monotonic()
        self._backoff = _BACKOFF_START

    def _close_store(self) -> None:
        store, self._store = self._store, None
        self._close_quietly(store)

    @staticmethod
    def _close_quietly(store: Store | None) -> None:
        if store is None:
            return
        try:
            store.close()
        except Exception:
            log.debug("writer: closing the store failed", exc_info=True)

    def _enrich_safely(self, record: Record) -> None:
        if self._enrich is None:
            return
        try:
            self._enrich(record)
        except Exception:
            log.exception("writer: enrichment failed for record %s", record.id)

    def _count(self, name: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self._counts[name] += n
        self._notify(f"records_{name}", n)

    def _settle(self, rows: Sequence[Row]) -> None:
        """These request rows are stored, spooled or given up on: the writer is done with them."""
        if self._journal is not None and rows:
            try:
                self._journal.settled(rows)
            except Exception:
                log.exception("writer: the journal failed to forget settled records")
        with self._lock:
            self._settled += len(rows)
            self._lock.notify_all()

    def _notify(self, method: str, n: int) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, method)(n)
        except Exception:
            log.exception("writer: observer %s failed", method)


def _yield_processor() -> None:
    """Let a thread that has just become runnable (a request waiting for the interpreter
    lock) run before the writer's next slice: the lock is released around the call, and on
    a single core the waiting thread would otherwise lose the race to take it back."""
    sched_yield = getattr(os, "sched_yield", None)
    if sched_yield is not None:
        sched_yield()


def repair_row(row: Row) -> Row:
    """A copy of a row with the values databases refuse made acceptable."""
    return {key: _repair_value(value) for key, value in row.items()}


def _repair_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else None
    if not isinstance(value, str):
        return value
    data = value.replace("\x00", "\\u0000").encode("utf-8", "replace")
    if len(data) <= _MAX_TEXT_BYTES:
        return data.decode("utf-8")
    marker = f"\n[truncated by the gateway: {len(data)} bytes]"
    return data[: _MAX_TEXT_BYTES - len(marker)].decode("utf-8", "ignore") + marker


def minimal_row(row: Row, error: str) -> Row:
    """Every column at its default but the exchange's identity and the refusal."""
    minimal = Record(id="", request_id="", started_at=0.0, provider="", method="", path="").to_row()
    minimal.update({key: row.get(key) for key in _IDENTITY if key in row})
    minimal.update(error_kind="record_rejected", error_message=error[:500])
    return minimal


def _rows_of(records: Sequence[Record]) -> tuple[list[Row], list[Row]]:
    requests: list[Row] = []
    files: list[Row] = []
    for record in records:
        try:
            row, own = record.to_row(), record.file_rows() + record.related_rows()
        except Exception as exc:
            log.exception("writer: record %s could not be turned into a row", record.id)
            identity = {key: getattr(record, key, None) for key in _IDENTITY}
            started = record.started_at
            identity["started_at"] = iso(started if isinstance(started, float) else time.time())
            identity["outcome"] = str(identity["outcome"])
            row, own = minimal_row(identity, f"unserialisable record: {exc}"), []
        requests.append(row)
        files.extend(own)
    return requests, files


def _groups(requests: list[Row], files: list[Row]) -> list[tuple[Row | None, list[Row]]]:
    """Each request row with its files rows; files rows matching no request come last."""
    owner: dict[str, int] = {}
    for index, row in enumerate(requests):
        key = row.get("id")
        if isinstance(key, str):
            owner.setdefault(key, index)
    groups: list[tuple[Row | None, list[Row]]] = [(row, []) for row in requests]
    orphans: list[Row] = []
    for file_row in files:
        key = file_row.get("record_id")
        owned = owner.get(key) if isinstance(key, str) else None
        (groups[owned][1] if owned is not None else orphans).append(file_row)
    if orphans:
        groups.append((None, orphans))
    return groups


def _row_id(row: Row | None) -> str:
    return str(row.get("id")) if row else "(files only)"
