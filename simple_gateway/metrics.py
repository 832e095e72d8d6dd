"""Prometheus metrics of the gateway, added up over every gunicorn worker.

design: prometheus_client decides how metric values are kept when `prometheus_client.values`
is first imported: in process memory, or, when PROMETHEUS_MULTIPROC_DIR is set, in one
mmap file per process under that directory, which any process can add up. So the gunicorn
master sets PROMETHEUS_MULTIPROC_DIR and empties the directory (`prepare_multiprocess_dir`)
before any worker exists, and the workers, which inherit the environment through the fork,
import prometheus_client only after that. This module imports prometheus_client inside its
functions, never at module level, so importing it in the master cannot make the choice early.
When a worker exits, the master's `child_exit` hook calls `mark_process_dead(pid)` so the
worker's queue-depth gauge stops counting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from simple_gateway.records.model import GuardrailRun, Record

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
TEMP_DIR_PREFIX = "simple-gateway-metrics-"
_OWNER_FILE = "owner"  # "<pid> <start time>" of the master that made the folder

# From a cached 1 ms answer to a 10 minute generation.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

# From a local regex (tens of microseconds) to a slow webhook or judge.
GUARDRAIL_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_RECORD_EVENTS = {
    "written": "Records written to the database.",
    "spooled": "Records kept in the spool because the database could not take them yet.",
    "replayed": "Records written to the database from the spool.",
    "failed": "Records the database refused even after repair (kept as minimal rows).",
}


def _cache_process_id() -> None:
    """Spare every metric update its getpid() system call (one per update otherwise).

    In multi-process mode each update asks for the process id to notice a fork. A gunicorn
    worker never forks again, so the id read once, in the worker, stays right.
    """
    if not os.environ.get(MULTIPROCESS_ENV):
        return
    from prometheus_client import values

    pid = os.getpid()
    values.ValueClass = values.MultiProcessValue(lambda: pid)


class GatewayMetrics:
    """The gateway's metrics; observes the record writer and finished exchanges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        _cache_process_id()

        self.registry = registry if registry is not None else CollectorRegistry()
        self._records = {
            event: Counter(f"gateway_records_{event}_total", text, registry=self.registry)
            for event, text in _RECORD_EVENTS.items()
        }
        self._queue_depth = Gauge(
            "gateway_record_queue_depth",
            "Records waiting for the writer thread, summed over live workers.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._held = Gauge(
            "gateway_records_held",
            "Records held in memory because neither the database nor the spool could take "
            "them, summed over live workers.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._search_lag = Gauge(
            "gateway_search_index_lag",
            "Records stored but not yet in the SQLite search index, as the writers last saw "
            "(a search indexes them first).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._requests = Counter(
            "gateway_requests_total",
            "Exchanges finished, by provider, status class and outcome.",
            ["provider", "status_class", "outcome"],
            registry=self.registry,
        )
        self._attempts = Counter(
            "gateway_deployment_attempts_total",
            "Upstream attempts of routed requests, by deployment and outcome "
            "(answered, retried, gave_up).",
            ["deployment", "outcome"],
            registry=self.registry,
        )
        self._failures = Counter(
            "gateway_deployment_failures_total",
            "Failed upstream attempts of routed requests, by deployment and kind.",
            ["deployment", "error_kind"],
            registry=self.registry,
        )
        self._cooldowns = Counter(
            "gateway_deployment_cooldowns_total",
            "Times a deployment was taken out of rotation after a failure.",
            ["deployment"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from the request's arrival to the end of the response.",
            ["provider"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

        self._guardrail_runs = Counter(
            "gateway_guardrail_runs_total",
            "Guardrail executions, by guardrail, stage and verdict.",
            ["guardrail", "stage", "verdict"],
            registry=self.registry,
        )
        self._guardrail_duration = Histogram(
            "gateway_guardrail_duration_seconds",
            "Time a guardrail took to give its verdict.",
            ["guardrail", "stage"],
            buckets=GUARDRAIL_BUCKETS,
            registry=self.registry,
        )

    def guardrail_run(self, run: GuardrailRun) -> None:
        self._guardrail_runs.labels(run.guardrail, run.stage, run.verdict).inc()
        if run.verdict != "cancelled":
            self._guardrail_duration.labels(run.guardrail, run.stage).observe(
                run.duration_ms / 1000
            )

    def records_written(self, n: int) -> None:
        self._records["written"].inc(n)

    def records_spooled(self, n: int) -> None:
        self._records["spooled"].inc(n)

    def records_replayed(self, n: int) -> None:
        self._records["replayed"].inc(n)

    def records_failed(self, n: int) -> None:
        self._records["failed"].inc(n)

    def queue_depth(self, n: int) -> None:
        self._queue_depth.set(n)

    def records_held(self, n: int) -> None:
        self._held.set(n)

    def search_lag(self, n: int) -> None:
        self._search_lag.set(n)

    def exchange_finished(self, record: Record) -> None:
        duration = None if record.ended_at is None else record.ended_at - record.started_at
        self.request_finished(record.provider, record.status, str(record.outcome), duration)
        for attempt in record.attempts:
            self._attempts.labels(attempt.deployment, attempt.outcome).inc()
            if attempt.error_kind is not None:
                self._failures.labels(attempt.deployment, attempt.error_kind).inc()

    def deployment_cooled(self, deployment: str) -> None:
        self._cooldowns.labels(deployment).inc()

    def request_finished(
        self, provider: str, status: int | None, outcome: str, duration: float | None
    ) -> None:
        self._requests.labels(provider, status_class(status), outcome).inc()
        if duration is not None:
            self._duration.labels(provider).observe(max(duration, 0.0))

    def render(self) -> tuple[bytes, str]:
        """The exposition text of every process (body, content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self._readable_registry()), CONTENT_TYPE_LATEST

    def record_counters(self) -> dict[str, int]:
        """Written, spooled, replayed and failed records, summed over every process."""
        totals = dict.fromkeys(_RECORD_EVENTS, 0.0)
        wanted = {f"gateway_records_{event}_total": event for event in _RECORD_EVENTS}
        for family in self._readable_registry().collect():
            for sample in family.samples:
                event = wanted.get(sample.name)
                if event is not None:
                    totals[event] += sample.value
        return {event: round(count) for event, count in totals.items()}

    def _readable_registry(self) -> CollectorRegistry:
        if not os.environ.get(MULTIPROCESS_ENV):
            return self.registry
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


def status_class(status: int | None) -> str:
    """The label for a status: "2xx" for 200..299 and so on, "none" when none was sent."""
    if status is None:
        return "none"
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


def mark_process_dead(pid: int) -> None:
    """For gunicorn's `child_exit` hook: drop a dead worker's live gauges."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def prepare_multiprocess_dir(path: Path) -> None:
    """Create the directory, or remove the value files a previous run left in it.

    Call it in the gunicorn master before any worker starts; counters would otherwise
    continue from the last run. Only prometheus_client's `*.db` files are removed.
    """
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.suffix == ".db" and entry.is_file():
            entry.unlink()


def new_multiprocess_dir() -> Path:
    """A fresh folder for the metrics of this master's workers, in the temp directory.

    Folders that masters killed before their exit hook ran left behind are removed first.
    The folder names its owner (pid and start time), so a later start can tell a folder of
    a master that is gone from one of a gateway still running.
    """
    remove_stale_multiprocess_dirs(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=TEMP_DIR_PREFIX))
    (path / _OWNER_FILE).write_text(_identity(os.getpid()) or f"{os.getpid()} ?")
    return path


def remove_stale_multiprocess_dirs(temp: Path) -> list[Path]:
    """Remove our metrics folders whose master is gone; the folders removed.

    Only folders with our prefix, owned by this user, that name their master, and whose
    master no longer runs (no such pid, or a different process under that pid) are removed;
    a folder that does not say whose it is is left alone.
    """
    removed = []
    for entry in temp.glob(f"{TEMP_DIR_PREFIX}*"):
        try:
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
            owner = (entry / _OWNER_FILE).read_text().strip()
        except OSError:
            continue
        pid = owner.split(" ", 1)[0]
        if not pid.isdigit() or _identity(int(pid)) == owner:
            continue
        if owner.endswith(" ?") and _running(int(pid)):
            continue  # no start time to compare: a live pid may still be the owner
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _identity(pid: int) -> str | None:
    """ "<pid> <start time>" of a running process (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"  # field 22: start time in ticks


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
