"""Closed-loop HTTP load: wrk when installed, else the Python generator in `bench.pyload`.

wrk is Debian's `wrk` package (`apt-get install wrk`, /usr/bin/wrk). A Lua script gives it
the POST body, stops each thread after a request budget and prints one JSON line from
`done()` with the exact counts and percentiles, which is what we parse. Both generators
run in a child process pinned to the load-generator CPU and report the same `LoadResult`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import Processes, python_command

CHAT_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
    },
    separators=(",", ":"),
)

_WRK_MARKER = "BENCH_JSON "
_LUA = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

local budget = {budget}
local answered = 0

function response(status, headers, body)
  answered = answered + 1
  if answered >= budget then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass
class LoadResult:
    tool: str
    connections: int
    requests: int  # responses received
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx responses
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "not installed (Python generator used)"
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=5, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0].strip()


def run_load(
    procs: Processes,
    url: str,
    *,
    connections: int,
    duration: float,
    budget: int,
    cpus: set[int],
    warmup: float = 0.0,
) -> LoadResult:
    """POST the chat body to `url` for `duration` s (at most `budget` answers) after a warm-up."""
    if warmup > 0:
        _run_once(procs, url, connections, warmup, budget, cpus)
    return _run_once(procs, url, connections, duration, budget, cpus)


def _run_once(
    procs: Processes, url: str, connections: int, duration: float, budget: int, cpus: set[int]
) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        return run_pyload(procs, url, connections, duration, budget, cpus)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA.format(body=CHAT_BODY, budget=budget, marker=_WRK_MARKER))
    try:
        command = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        out = procs.run(command, cpus, timeout=duration + 60)
    finally:
        Path(script.name).unlink(missing_ok=True)
    return parse_wrk(out, connections)


def parse_wrk(out: str, connections: int) -> LoadResult:
    line = next((x for x in out.splitlines() if x.startswith(_WRK_MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out[-500:]!r}")
    data = json.loads(line[len(_WRK_MARKER) :])
    seconds = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        tool="wrk",
        connections=connections,
        requests=data["requests"],
        duration_s=seconds,
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        detail=data,
    )


def run_pyload(
    procs: Processes,
    url: str,
    connections: int,
    duration: float,
    budget: int,
    cpus: set[int],
    *,
    tag: bool = False,
) -> LoadResult:
    """The Python generator; with `tag` every request carries a unique `x-bench-seq`."""
    args = [
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--budget",
        str(budget),
    ]
    out = procs.run(
        python_command("bench.pyload", *args, *(["--tag"] if tag else [])),
        cpus,
        timeout=duration + 60,
    )
    data = json.loads(out)
    return LoadResult(
        tool="python",
        connections=connections,
        requests=data["answered"],
        duration_s=data["duration_s"],
        rps=data["answered"] / data["duration_s"] if data["duration_s"] else 0.0,
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        errors=data["failed"] + data["non_2xx"],
        detail=data,
    )
