"""Spool: batches survive on disk and are replayed exactly once, whoever replays them."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.records.spool import Spool, decode_batch, encode_batch
from simple_gateway.store.base import Row, StoreUnavailable
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import make_file, make_record


def batch(start: int, size: int = 5) -> tuple[list[Row], list[Row]]:
    requests = [{"id": f"r{n}", "path": "/v1/x", "status": 200} for n in range(start, start + size)]
    files = [{"id": f"f{start}", "record_id": f"r{start}", "path": "a/b.json"}]
    return requests, files


class Collector:
    """A `write` for replay that remembers every request id it was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.files: list[str] = []

    def __call__(self, requests: list[Row], files: list[Row]) -> None:
        with self.lock:
            self.ids.extend(row["id"] for row in requests)
            self.files.extend(row["id"] for row in files)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(directory: Path) -> Iterator[Spool]:
    spool = Spool(directory)
    yield spool
    spool.close()


def spool_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("spool-*"))


def test_appended_batches_are_replayed_and_the_files_removed(spool: Spool) -> None:
    for start in (0, 5, 10):
        spool.append(*batch(start))
    assert spool.pending() == 15
    (name,) = spool_files(spool.directory)
    assert name.startswith(f"spool-{os.getpid()}-")

    collector = Collector()
    assert spool.replay(collector) == 15
    assert collector.ids == [f"r{n}" for n in range(15)]
    assert collector.files == ["f0", "f5", "f10"]
    assert spool.pending() == 0
    assert spool_files(spool.directory) == []

    spool.append(*batch(20))
    assert spool.replay(collector) == 5


def test_values_survive_the_round_trip(spool: Spool) -> None:
    row = {"id": "x", "nul": "a\x00b", "surrogate": "\ud800", "n": 2**70, "f": 1.5, "b": True}
    spool.append([row], [])
    collector: list[Row] = []
    spool.replay(lambda requests, files: collector.extend(requests))
    assert collector == [row]


def test_a_line_spooled_before_the_files_rename_replays_into_record_id(
    directory: Path, tmp_path: Path
) -> None:
    record = make_record(0)
    old_file_row = asdict(make_file(record))
    old_file_row["request_id"] = old_file_row.pop("record_id")  # as the previous version wrote it
    directory.mkdir(parents=True)
    (directory / "spool-1-1.jsonl").write_bytes(encode_batch([record.to_row()], [old_file_row]))

    store = SqliteStore(str(tmp_path / "g.db"))
    try:
        store.migrate()
        assert Spool(directory).replay(store.write_batch) == 1
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        joined = conn.execute(
            "SELECT files.id FROM files JOIN requests ON files.record_id = requests.id"
        ).fetchall()
    assert joined == [(old_file_row["id"],)]


def test_a_file_in_use_by_a_live_writer_is_left_alone(spool: Spool, directory: Path) -> None:
    spool.append(*batch(0))
    other_worker = Spool(directory)
    collector = Collector()
    assert other_worker.replay(collector) == 0
    assert collector.ids == []

    spool.close()
    assert other_worker.replay(collector) == 5


def test_two_workers_replaying_one_directory_write_each_row_once(directory: Path) -> None:
    for writer in range(20):
        spool = Spool(directory)
        for start in range(0, 50, 5):
            spool.append(*batch(writer * 100 + start))
        spool.close()
    assert len(spool_files(directory)) == 20

    collector = Collector()
    ready = threading.Barrier(2)
    totals: list[int] = []

    def worker() -> None:
        spool = Spool(directory)
        ready.wait()
        totals.append(spool.replay(collector))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(totals) == 1000
    assert len(collector.ids) == 1000
    assert len(set(collector.ids)) == 1000
    assert spool_files(directory) == []


def test_a_torn_last_line_goes_to_a_corrupt_file(spool: Spool, directory: Path) -> None:
    spool.append(*batch(0))
    spool.append(*batch(5))
    spool.close()
    (path,) = directory.glob("spool-*.jsonl")
    torn = b'{"requests":[{"id":"r10","path":"/v1'
    with open(path, "ab") as handle:
        handle.write(torn)

    collector = Collector()
    assert spool.replay(collector) == 10
    (corrupt,) = directory.glob("corrupt-*.jsonl")
    assert corrupt.read_bytes() == torn + b"\n"
    assert spool_files(directory) == []


def test_store_lost_mid_replay_keeps_the_rest(spool: Spool, directory: Path) -> None:
    for start in (0, 5, 10, 15):
        spool.append(*batch(start))
    written: list[str] = []

    def flaky(requests: list[Row], files: list[Row]) -> None:
        if requests[0]["id"] == "r10":
            raise StoreUnavailable("gone")
        written.extend(row["id"] for row in requests)

    with pytest.raises(StoreUnavailable):
        spool.replay(flaky)
    assert written == [f"r{n}" for n in range(10)]
    assert spool.pending() == 10
    assert not list(directory.glob("*.replaying-*"))

    collector = Collector()
    assert Spool(directory).replay(collector) == 10
    assert collector.ids == [f"r{n}" for n in range(10, 20)]


def test_a_claim_left_by_a_dead_replayer_is_claimed_again(directory: Path) -> None:
    directory.mkdir()
    left = directory / "spool-4242-1700000000000.replaying-4343"
    left.write_bytes(encode_batch(*batch(0)) + encode_batch(*batch(5)))
    collector = Collector()
    assert Spool(directory).replay(collector) == 10
    assert not left.exists()


def test_rejected_rows_are_kept_with_the_reason(spool: Spool, directory: Path) -> None:
    spool.reject({"id": "r1", "text": "\x00"}, [{"id": "f1"}], "refused: NUL")
    (path,) = directory.glob("rejected-*.jsonl")
    entry = json.loads(path.read_text())
    assert entry == {
        "error": "refused: NUL",
        "request": {"id": "r1", "text": "\x00"},
        "files": [{"id": "f1"}],
    }


def test_decode_batch_refuses_what_is_not_a_batch() -> None:
    assert decode_batch(encode_batch(*batch(0))) == batch(0)
    for line in (
        b"",
        b"[]",
        b'{"requests": 3}',
        b'{"requests": [1]}',
        b"\xff\xfe",
        b'{"requests": [',
    ):
        assert decode_batch(line) is None


def _replay_into(directory: str, out: str, start: Any) -> None:
    """A worker process: replay the spool, noting every id it wrote."""
    start.wait(30)
    with open(out, "w") as handle:

        def write(requests: list[Row], files: list[Row]) -> None:
            handle.write("".join(f"{row['id']}\n" for row in requests))
            handle.flush()

        Spool(Path(directory)).replay(write)


def test_two_processes_replaying_one_directory_write_each_row_once(
    directory: Path, tmp_path: Path
) -> None:
    for writer in range(10):
        spool = Spool(directory)
        for start in range(0, 100, 5):
            spool.append(*batch(writer * 1000 + start))
        spool.close()

    context = multiprocessing.get_context("spawn")
    go = context.Event()
    outputs = [tmp_path / f"out-{n}.txt" for n in range(2)]
    processes = [
        context.Process(target=_replay_into, args=(str(directory), str(out), go)) for out in outputs
    ]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0

    ids = [line for out in outputs for line in out.read_text().splitlines()]
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert spool_files(directory) == []
