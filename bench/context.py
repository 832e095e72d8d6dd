"""What every scenario shares: the run's plan, the CPU split, the mock upstream, gateways.

Topology: gateways run on the first CPU; the mock upstream, the load generators and this
process (the scenario driver, the in-process writer benchmark, the PostgreSQL forwarder)
share the second. So the gateway never competes with its own load for a core, and the
"direct" baseline measures the mock and client on exactly the CPU they have in the
gateway runs. With a single CPU everything shares it and the results say so.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.procs import (
    Processes,
    free_port,
    python_command,
    wait_for_line,
    wait_healthy,
)
from simple_gateway.settings import SETTINGS

_GATEWAY_ENV = {s.name for s in SETTINGS} | {
    "GATEWAY_CONFIG",
    "PROMETHEUS_MULTIPROC_DIR",
    "SIMPLE_GATEWAY_INSTANCE_ID",
}
_PROBLEM = re.compile(r"Traceback|\b(ERROR|CRITICAL)\b|WORKER TIMEOUT|Worker .* (was sent|exited)")


@dataclass(frozen=True)
class Plan:
    """Durations and counts of one run: the full benchmark or the --quick smoke run."""

    warmup_s: float = 2.0
    load_s: float = 10.0
    latency_s: float = 5.0
    stream_rounds: int = 3
    slow_streams: int = 1000
    slow_chunks: int = 10
    binary_gets: int = 10
    writer_records: int = 50_000
    pg_up_s: float = 10.0
    pg_down_s: float = 60.0
    pg_tail_s: float = 5.0
    pg_catchup_s: float = 60.0


FULL = Plan()
QUICK = Plan(
    warmup_s=1.0,
    load_s=3.0,
    latency_s=2.0,
    stream_rounds=1,
    slow_chunks=4,
    binary_gets=3,
    writer_records=10_000,
    pg_up_s=3.0,
    pg_down_s=10.0,
    pg_tail_s=2.0,
    pg_catchup_s=30.0,
)


@dataclass
class Gateway:
    name: str
    url: str
    child: subprocess.Popen[bytes]
    workdir: Path
    env: dict[str, str]

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def spool(self) -> Path:
        return Path(self.env["SPOOL_PATH"])

    def problems(self) -> list[str]:
        """Lines of the gateway's own logs that report errors, crashes or worker restarts."""
        lines: list[str] = []
        for log in ("stderr.log", "stdout.log"):
            path = self.workdir / log
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                lines += [f"{self.name}: {x.strip()[:300]}" for x in text if _PROBLEM.search(x)]
        return lines


def warm_up(base: str, exchanges: int = 20) -> None:
    """A few sequential chat exchanges, plain and streamed, through a new gateway."""
    url = f"{base}/v1/chat/completions"
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "warm-up"}],
    }
    with requests.Session() as session:
        for index in range(exchanges):
            stream = index % 4 == 3
            response = session.post(
                url, json={**body, "stream": stream}, headers={"x-mock-chunks": "3"}, timeout=30
            )
            response.raise_for_status()


@dataclass
class Bench:
    procs: Processes
    workdir: Path
    plan: Plan
    gateway_cpus: set[int]
    load_cpus: set[int]
    all_cpus: set[int]
    problems: list[str] = field(default_factory=list)
    _mock_url: str = ""

    @property
    def mock_url(self) -> str:
        """The mock upstream, started on first use and shared by every scenario."""
        if not self._mock_url:
            port = free_port()
            child = self.procs.spawn(
                python_command("tests.upstream", "--port", str(port)),
                self.load_cpus,
                stdout=subprocess.PIPE,
            )
            wait_for_line(child, b"listening on", timeout=20)
            self._mock_url = f"http://127.0.0.1:{port}"
        return self._mock_url

    @contextlib.contextmanager
    def gateway(
        self,
        name: str,
        env: dict[str, str] | None = None,
        *,
        default: bool = False,
        warm: bool = True,
    ) -> Iterator[Gateway]:
        """A fresh gateway with its data in a new folder; `default` keeps gunicorn's defaults.

        Bench gateways run one worker on the gateway CPU without access log; the `default`
        one runs as `python -m simple_gateway` would out of the box (a worker per CPU).
        With `warm`, a few exchanges go through it first, so one-time work (lazy imports,
        the first upstream connection, the database schema) is not measured.
        """
        workdir = self.workdir / name
        data = workdir / "data"
        data.mkdir(parents=True)
        port = free_port()
        full_env = {k: v for k, v in os.environ.items() if k not in _GATEWAY_ENV}
        full_env = {k: v for k, v in full_env.items() if not k.endswith("_UPSTREAM_URL")}
        full_env.update(
            HOST="127.0.0.1",
            PORT=str(port),
            DB_PATH=str(data / "gateway.db"),
            FILE_STORAGE_PATH=str(data / "files"),
            SPOOL_PATH=str(data / "spool"),
            OPENAI_UPSTREAM_URL=self.mock_url,
            PYTHONUNBUFFERED="1",
        )
        if not default:
            full_env.update(WORKERS="1", ACCESS_LOG="false", LOG_LEVEL="warning")
            full_env.update(GRACEFUL_TIMEOUT="5")  # bounds the time a stop can take
        full_env.update(env or {})
        with open(workdir / "stdout.log", "wb") as out, open(workdir / "stderr.log", "wb") as err:
            child = self.procs.spawn(
                python_command("simple_gateway"),
                self.all_cpus if default else self.gateway_cpus,
                env=full_env,
                cwd=workdir,  # no .env or gateway.yaml of the repository is picked up
                stdout=out,
                stderr=err,
            )
        gateway = Gateway(name, f"http://127.0.0.1:{port}", child, workdir, full_env)
        try:
            wait_healthy(f"{gateway.url}/health", child, workdir / "stderr.log", timeout=30)
            if warm:
                warm_up(gateway.url)
            yield gateway
        finally:
            if child.poll() is not None:
                self.problems.append(f"{name}: gateway had exited with {child.returncode}")
            self.procs.stop(child)
            self.problems.extend(gateway.problems())
