"""RecordWriter: every record submitted ends up stored, spooled or isolated, never lost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from simple_gateway.records.model import FileRef, Record
from simple_gateway.records.spool import Spool
from simple_gateway.records.writer import RecordWriter, minimal_row, repair_row
from simple_gateway.store.base import Row, RowRejected, StoreUnavailable


class FakeDatabase:
    """What the stores opened by a test share: rows by id, switchable availability."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, Row] = {}
        self.files: dict[str, Row] = {}
        self.inserted = 0
        self.duplicates = 0
        self.migrations = 0
        self.unindexed = 0  # rows stored but not in the search index
        self.index_calls = 0
        self.batch_sizes: list[int] = []  # request rows per write_batch call
        self.available = True
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()

    def open(self) -> FakeStore:
        if not self.available:
            raise StoreUnavailable("fake database is down")
        return FakeStore(self)

    def write_batch(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        if not self.available:
            raise StoreUnavailable("fake database is down")
        self.writing.set()
        self.gate.wait()
        self.batch_sizes.append(len(requests))
        for row in [*requests, *files]:
            if _refused(row):
                raise RowRejected(f"refused row {row.get('id')}")
        with self.lock:
            for row in requests:
                if row["id"] in self.requests:
                    self.duplicates += 1
                else:
                    self.requests[row["id"]] = dict(row)
                    self.inserted += 1
                    self.unindexed += 1
            for row in files:
                self.files.setdefault(row["id"], dict(row))


def _refused(row: Row) -> bool:
    """NULs, lone surrogates, huge ints, and the model "poison", which no repair removes."""
    if row.get("model") == "poison":
        return True
    for value in row.values():
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return True
        if isinstance(value, str):
            if "\x00" in value:
                return True
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class FakeStore:
    dialect = "fake"

    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    def migrate(self) -> list[str]:
        self.database.migrations += 1
        return ["0001_fake"]

    def write_batch(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        self.database.write_batch(requests, files)

    def index_pending(self, limit: int) -> int:
        with self.database.lock:
            self.database.index_calls += 1
            self.database.unindexed -= min(limit, self.database.unindexed)
            return self.database.unindexed

    def purge_before(self, cutoff_iso: str) -> list[str]:
        return []

    def purge_keep_newest(self, max_rows: int) -> list[str]:
        return []

    def count(self) -> int:
        return len(self.database.requests)

    def close(self) -> None:
        pass


def make_record(n: int, **changes: object) -> Record:
    record = Record(
        id=f"rec-{n:06d}",
        request_id=f"req-{n:06d}",
        started_at=1_700_000_000.0 + n,
        provider="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        ended_at=1_700_000_001.0 + n,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool")
    yield spool
    spool.close()


def make_writer(database: FakeDatabase, spool: Spool, **options: object) -> RecordWriter:
    return RecordWriter(database.open, spool, **options)  # type: ignore[arg-type]


def test_records_from_eight_threads_are_stored_exactly_once(
    database: FakeDatabase, spool: Spool
) -> None:
    writer = make_writer(database, spool)
    writer.start()

    def produce(worker: int) -> None:
        for n in range(625):
            writer.submit(make_record(worker * 1000 + n))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert writer.flush(15)
    assert writer.stop(15)
    assert len(database.requests) == 5000
    assert database.inserted == 5000
    assert database.migrations == 1
    assert writer.stats["written"] + writer.stats["replayed"] == 5000


def test_store_down_at_start_spools_then_writes_everything_once(
    database: FakeDatabase, spool: Spool
) -> None:
    database.available = False
    writer = make_writer(database, spool)
    writer.start()
    for n in range(300):
        writer.submit(make_record(n))
    assert writer.flush(10)
    assert writer.stats["spooled"] == 300
    assert not writer.stats["store_available"]
    assert spool.pending() == 300

    database.available = True

    assert wait_until(lambda: len(database.requests) == 300 and spool.pending() == 0)
    assert writer.stop(10)
    assert database.inserted == 300
    assert database.duplicates == 0
    assert writer.stats["replayed"] == 300
    assert database.migrations == 1
    assert not list(spool.directory.glob("spool-*"))


def test_store_lost_mid_run_is_caught_up_from_the_spool(
    database: FakeDatabase, spool: Spool
) -> None:
    writer = make_writer(database, spool)
    writer.start()
    for n in range(100):
        writer.submit(make_record(n))
    assert writer.flush(10)
    assert len(database.requests) == 100

    database.available = False
    for n in range(100, 250):
        writer.submit(make_record(n))
    assert writer.flush(10)
    assert writer.stats["spooled"] == 150
    assert spool.pending() == 150

    database.available = True
    assert wait_until(lambda: len(database.requests) == 250 and spool.pending() == 0)
    assert wait_until(lambda: database.unindexed == 0)  # replayed rows are indexed too
    assert writer.stop(10)
    assert database.inserted == 250
    assert database.duplicates == 0
    assert writer.stats == {
        "written": 100,
        "spooled": 150,
        "replayed": 150,
        "failed": 0,
        "queue_depth": 0,
        "held": 0,
        "store_available": False,
        "search_lag": 0,
    }


def test_an_idle_writer_brings_the_search_index_up_to_date(
    database: FakeDatabase, spool: Spool
) -> None:
    observer = Observed()
    writer = make_writer(database, spool, observer=observer)
    writer.start()
    for n in range(1_200):
        writer.submit(make_record(n))
    assert writer.flush(10)
    assert wait_until(lambda: database.unindexed == 0)
    assert database.index_calls >= 3  # in slices
    assert wait_until(lambda: writer.stats["search_lag"] == 0)
    assert writer.stop(10)
    assert observer.lags[-1] == 0


def test_under_load_the_search_index_catches_up_once_the_lag_passes_its_bound(
    database: FakeDatabase, spool: Spool
) -> None:
    writer = make_writer(database, spool, busy=lambda: True)  # never idle
    writer.start()
    for n in range(300):
        writer.submit(make_record(n))
    assert writer.flush(10)
    for n in range(300, 6_000):
        writer.submit(make_record(n))
    assert writer.flush(10)
    # The first 300 rows wait (a search would index them first); once the backlog is stored
    # and 5,000 rows wait, the writer catches up anyway, down to below that bound.
    assert wait_until(lambda: database.unindexed < 5_000)
    assert database.unindexed > 0
    assert writer.stop(10)


def test_a_full_queue_spills_to_the_spool_and_nothing_is_dropped(
    database: FakeDatabase, spool: Spool
) -> None:
    database.gate.clear()
    writer = make_writer(database, spool, queue_size=10)
    writer.start()
    writer.submit(make_record(0))
    assert database.writing.wait(10)

    for n in range(1, 200):
        writer.submit(make_record(n))  # returns at once although the store is stuck

    assert writer.stats["spooled"] >= 189
    database.gate.set()
    assert writer.stop(15)
    assert sorted(database.requests) == sorted(make_record(n).id for n in range(200))
    assert database.inserted == 200
    assert spool.pending() == 0


def test_refused_rows_are_repaired_or_isolated_without_losing_the_batch(
    database: FakeDatabase, spool: Spool
) -> None:
    poison_file = FileRef(
        id="file-poison",
        record_id="rec-000003",
        direction="response",
        kind="body",
        path="openai/2024-01-01/rec-000003-response.json",
        content_type="application/json",
        size=3,
        sha256="0" * 64,
        created_at="2024-01-01T00:00:00.000+00:00",
    )
    records = [
        make_record(0),
        make_record(1, response_text="before\x00after"),
        make_record(2, user_agent="lone \ud800 surrogate"),
        make_record(3, model="poison", status=500, files=[poison_file]),
        make_record(4, input_tokens=2**70),
        make_record(5),
    ]
    writer = make_writer(database, spool)
    for record in records:
        writer.submit(record)
    writer.start()
    assert writer.flush(10)
    assert writer.stop(10)

    rows = database.requests
    assert len(rows) == 6
    assert rows["rec-000001"]["response_text"] == "before\\u0000after"
    assert rows["rec-000002"]["user_agent"] == "lone ? surrogate"
    assert rows["rec-000004"]["input_tokens"] is None
    minimal = rows["rec-000003"]
    assert minimal["error_kind"] == "record_rejected"
    assert minimal["status"] == 500
    assert minimal["model"] is None
    assert minimal["request_id"] == "req-000003"
    assert "file-poison" not in database.files
    assert writer.stats["written"] == 5
    assert writer.stats["failed"] == 1

    (rejected_file,) = spool.directory.glob("rejected-*.jsonl")
    (entry,) = [json.loads(line) for line in rejected_file.read_text().splitlines()]
    assert entry["request"]["model"] == "poison"
    assert entry["files"][0]["id"] == "file-poison"
    assert "refused row" in entry["error"]


def test_stop_drains_everything_and_later_records_are_spooled(
    database: FakeDatabase, spool: Spool
) -> None:
    writer = make_writer(database, spool, flush_interval=1.0)
    writer.start()
    for n in range(1000):
        writer.submit(make_record(n))
    assert writer.stop(15)
    assert len(database.requests) == 1000

    writer.submit(make_record(1000))
    assert spool.pending() == 1
    assert writer.stats["spooled"] == 1


def test_stop_past_its_deadline_spools_what_is_left(database: FakeDatabase, spool: Spool) -> None:
    database.gate.clear()
    writer = make_writer(database, spool)
    writer.start()
    writer.submit(make_record(0))
    assert database.writing.wait(10)
    for n in range(1, 50):
        writer.submit(make_record(n))

    assert not writer.stop(0.2)
    assert spool.pending() == 50

    database.gate.set()
    other_worker = Spool(spool.directory)
    expected = sorted(make_record(n).id for n in range(50))

    def caught_up() -> bool:
        other_worker.replay(database.write_batch)
        return sorted(database.requests) == expected and spool.pending() == 0

    assert wait_until(caught_up)


def test_enrichment_failures_are_contained(database: FakeDatabase, spool: Spool) -> None:
    def enrich(record: Record) -> None:
        if record.id.endswith("3"):
            raise ValueError("cannot parse")
        record.model = "gpt-test"

    writer = make_writer(database, spool, enrich=enrich)
    writer.start()
    for n in range(10):
        writer.submit(make_record(n))
    assert writer.stop(10)
    assert len(database.requests) == 10
    assert database.requests["rec-000003"]["model"] is None
    assert database.requests["rec-000004"]["model"] == "gpt-test"


def test_maintenance_runs_in_the_writer_with_the_store(
    database: FakeDatabase, spool: Spool
) -> None:
    called = threading.Event()
    threads: list[str] = []

    def maintenance(store: object) -> None:
        threads.append(threading.current_thread().name)
        assert isinstance(store, FakeStore)
        called.set()

    writer = make_writer(database, spool, maintenance=maintenance, maintenance_interval=0.05)
    writer.start()
    assert called.wait(10)
    assert writer.stop(10)
    assert threads[0] == "record-writer"


class Observed:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.depths: list[int] = []
        self.held: list[int] = []
        self.lags: list[int] = []

    def _add(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def records_written(self, n: int) -> None:
        self._add("written", n)

    def records_spooled(self, n: int) -> None:
        self._add("spooled", n)

    def records_replayed(self, n: int) -> None:
        self._add("replayed", n)

    def records_failed(self, n: int) -> None:
        self._add("failed", n)

    def queue_depth(self, n: int) -> None:
        self.depths.append(n)

    def records_held(self, n: int) -> None:
        self.held.append(n)

    def search_lag(self, n: int) -> None:
        self.lags.append(n)


def test_the_observer_hears_about_every_record(database: FakeDatabase, spool: Spool) -> None:
    observer = Observed()
    writer = make_writer(database, spool, observer=observer)
    writer.start()
    for n in range(20):
        writer.submit(make_record(n))
    assert writer.stop(10)
    assert observer.counts == {"written": 20}
    assert observer.depths


class FailingSpool(Spool):
    """A spool on a full disk until `heal()`."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.broken = True

    def append(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        super().append(requests, files)


def test_records_neither_store_nor_spool_can_take_are_counted_as_held(
    database: FakeDatabase, tmp_path: Path
) -> None:
    database.available = False
    spool = FailingSpool(tmp_path / "spool")
    observer = Observed()
    writer = make_writer(database, spool, observer=observer, flush_interval=0.01)
    writer.start()
    for n in range(10):
        writer.submit(make_record(n))
    assert wait_until(lambda: writer.stats["held"] == 10)
    assert observer.held[-1] == 10

    spool.broken = False
    assert wait_until(lambda: writer.stats["held"] == 0 and writer.stats["spooled"] == 10)
    assert observer.held[-1] == 0
    assert writer.stop(10)
    spool.close()


def test_repair_row_makes_values_acceptable() -> None:
    huge = "x" * (8 * 1024 * 1024 + 10)
    row = {"a": "n\x00ul", "b": "\udcff", "c": 2**64, "d": -(2**63), "e": True, "f": huge}
    repaired = repair_row(row)
    assert repaired["a"] == "n\\u0000ul"
    assert repaired["b"] == "?"
    assert repaired["c"] is None
    assert repaired["d"] == -(2**63)
    assert repaired["e"] is True
    assert repaired["f"].startswith("x" * 1000)
    assert len(repaired["f"].encode()) <= 8 * 1024 * 1024
    assert repaired["f"].endswith(f"[truncated by the gateway: {len(huge)} bytes]")


def test_minimal_row_keeps_identity_and_defaults_the_rest() -> None:
    row = make_record(7, model="m", response_text="t", status=502).to_row()
    minimal = minimal_row(row, "x" * 1000)
    assert set(minimal) == set(row)
    assert minimal["id"] == row["id"]
    assert minimal["started_at"] == row["started_at"]
    assert minimal["status"] == 502
    assert minimal["model"] is None
    assert minimal["response_text"] is None
    assert minimal["error_kind"] == "record_rejected"
    assert len(minimal["error_message"]) == 500


def test_with_the_sqlite_store(tmp_path: Path, spool: Spool) -> None:
    sqlite = pytest.importorskip("simple_gateway.store.sqlite")
    path = str(tmp_path / "records.db")
    writer = RecordWriter(lambda: sqlite.SqliteStore(path), spool)
    writer.start()
    for n in range(120):
        writer.submit(make_record(n, response_text="nul \x00 inside" if n == 5 else None))
    assert writer.stop(30)
    assert writer.stats["written"] == 120
    store = sqlite.SqliteStore(path)
    try:
        assert store.count() == 120
    finally:
        store.close()


def test_a_worker_that_stays_busy_still_gets_every_record_written(
    database: FakeDatabase, spool: Spool
) -> None:
    asked: list[int] = []

    def busy() -> bool:  # exchanges always in flight: the writer stands aside, but bounded
        asked.append(1)
        return True

    writer = make_writer(database, spool, busy=busy, flush_interval=0.01, batch_size=50)
    writer.start()
    try:
        for n in range(10):
            writer.submit(make_record(n))
        assert writer.flush(15)
        assert database.inserted == 10
        assert asked  # it did ask before writing
        for n in range(10, 130):  # more than a batch at once: no standing aside needed
            writer.submit(make_record(n))
        assert writer.flush(15)
        assert len(database.requests) == 130
    finally:
        writer.stop(5)


class InterleavingStore(FakeStore):
    """A store whose driver takes the interpreter lock back between rows, as SQLite's does."""

    holds_interpreter_between_rows = True


def _write_100_while_busy(database: FakeDatabase, spool: Spool, store: type[FakeStore]) -> None:
    writer = RecordWriter(
        lambda: store(database), spool, busy=lambda: True, flush_interval=0.05, batch_size=200
    )
    writer.start()
    try:
        for n in range(100):
            writer.submit(make_record(n))
        assert writer.flush(15)
    finally:
        writer.stop(5)
    assert sorted(database.requests) == [f"rec-{n:06d}" for n in range(100)]


def test_while_exchanges_run_an_interleaving_store_gets_short_transactions(
    database: FakeDatabase, spool: Spool
) -> None:
    _write_100_while_busy(database, spool, InterleavingStore)
    assert len(database.batch_sizes) >= 4
    assert max(database.batch_sizes) <= 32


def test_other_stores_get_each_batch_whole_while_exchanges_run(
    database: FakeDatabase, spool: Spool
) -> None:
    _write_100_while_busy(database, spool, FakeStore)
    assert max(database.batch_sizes) > 32
