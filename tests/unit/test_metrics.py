"""Metrics: one process reads its own registry; several add up through the shared directory."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from simple_gateway.metrics import (
    MULTIPROCESS_ENV,
    GatewayMetrics,
    mark_process_dead,
    prepare_multiprocess_dir,
    status_class,
)
from simple_gateway.records.model import Outcome, Record


def _sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)


@pytest.mark.usefixtures("single_process")
def test_writer_events_and_exchanges_are_counted() -> None:
    metrics = GatewayMetrics()
    metrics.records_written(5)
    metrics.records_spooled(2)
    metrics.records_replayed(2)
    metrics.records_failed(1)
    metrics.queue_depth(7)
    metrics.search_lag(12)
    record = Record(
        id="a",
        request_id="a",
        started_at=100.0,
        provider="openai",
        method="POST",
        path="/v1/chat/completions",
        status=429,
        ended_at=100.25,
        outcome=Outcome.UPSTREAM_ERROR,
    )
    metrics.exchange_finished(record)

    assert metrics.record_counters() == {
        "written": 5.0,
        "spooled": 2.0,
        "replayed": 2.0,
        "failed": 1.0,
    }
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert _sample(text, "gateway_record_queue_depth") == 7.0
    assert _sample(text, "gateway_search_index_lag") == 12.0
    labels = 'outcome="upstream_error",provider="openai",status_class="4xx"'
    assert _sample(text, "gateway_requests_total{" + labels + "}") == 1.0
    bucket = 'gateway_request_duration_seconds_bucket{le="0.25",provider="openai"}'
    assert _sample(text, bucket) == 1.0


@pytest.mark.usefixtures("single_process")
def test_instances_do_not_share_a_registry() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.records_written(3)
    assert second.record_counters()["written"] == 0.0


def test_status_classes() -> None:
    assert [status_class(s) for s in (None, 101, 200, 302, 404, 503, 999)] == [
        "none",
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "other",
    ]


def _worker(written: int, depth: int) -> None:
    """A stand-in for a gunicorn worker: PROMETHEUS_MULTIPROC_DIR came with the environment."""
    metrics = GatewayMetrics()
    metrics.records_written(written)
    metrics.records_spooled(1)
    metrics.queue_depth(depth)
    metrics.request_finished("openai", 200, "completed", 0.5)


@pytest.mark.usefixtures("single_process")
def test_several_processes_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Made first, so that this test process keeps its own values in memory, like a
    # process that reads the directory without writing to it.
    metrics = GatewayMetrics()
    directory = tmp_path / "metrics"
    prepare_multiprocess_dir(directory)
    monkeypatch.setenv(MULTIPROCESS_ENV, str(directory))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter sees the variable first
    workers = [context.Process(target=_worker, args=args) for args in ((3, 10), (4, 20))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    assert metrics.record_counters() == {
        "written": 7.0,
        "spooled": 2.0,
        "replayed": 0.0,
        "failed": 0.0,
    }
    text = metrics.render()[0].decode()
    assert _sample(text, "gateway_records_written_total") == 7.0
    labels = 'outcome="completed",provider="openai",status_class="2xx"'
    assert _sample(text, "gateway_requests_total{" + labels + "}") == 2.0
    assert _sample(text, "gateway_record_queue_depth") == 30.0

    for worker in workers:
        assert worker.pid is not None
        mark_process_dead(worker.pid)
    text = metrics.render()[0].decode()
    assert _sample(text, "gateway_record_queue_depth") is None
    assert _sample(text, "gateway_records_written_total") == 7.0


def test_prepare_multiprocess_dir_clears_old_values_only(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    prepare_multiprocess_dir(directory)
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "notes.txt").write_text("mine")
    prepare_multiprocess_dir(directory)
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]


def test_stale_multiprocess_folders_of_dead_masters_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from simple_gateway.metrics import TEMP_DIR_PREFIX, _identity, remove_stale_multiprocess_dirs

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(open(f'/proc/{os.getpid()}/stat').read())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout.split()[0])
    dead_start = child.stdout.rsplit(")", 1)[1].split()[19]

    def folder(name, owner):
        path = tmp_path / name
        path.mkdir()
        if owner is not None:
            (path / "owner").write_text(owner)
        return path

    mine = _identity(os.getpid())
    dead = folder(f"{TEMP_DIR_PREFIX}dead", f"{dead_pid} {dead_start}")
    reused = folder(f"{TEMP_DIR_PREFIX}reused", f"{os.getpid()} 1")  # same pid, other process
    live = folder(f"{TEMP_DIR_PREFIX}live", mine)
    unknown = folder(f"{TEMP_DIR_PREFIX}unknown", None)
    foreign = folder("someone-elses-folder", f"{dead_pid} {dead_start}")

    assert sorted(remove_stale_multiprocess_dirs(tmp_path)) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert live.exists() and unknown.exists() and foreign.exists()
