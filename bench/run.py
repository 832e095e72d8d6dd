"""The gateway's benchmark: direct to the mock upstream versus through the gateway, in one run.

    python bench/run.py                 # every scenario, about 4-6 minutes
    python bench/run.py --quick         # a smoke run of 1-2 minutes
    python bench/run.py --only chat16   # one scenario (repeat --only for more)

Prints a Markdown table with the targets and writes it to --out (default bench/results.md),
with the raw numbers as JSON next to it. See bench/README.md for what each scenario does.

The closed-loop load comes from wrk, installed from Debian's `wrk` package (`apt-get install
wrk`, /usr/bin/wrk); without it the Python generator `bench.pyload` is used and the table's
header says so.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import functools
import platform
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from bench import burst_scenarios, http_scenarios, record_scenarios, report
from bench.context import FULL, QUICK, Bench
from bench.load import wrk_version
from bench.procs import ROOT, Processes, raise_nofile
from bench.report import Outcome

SCENARIOS: dict[str, Callable[[Bench], Outcome]] = {
    "reference": http_scenarios.reference,
    "chat16": functools.partial(http_scenarios.chat, connections=16, records_off=True),
    "chat64": functools.partial(http_scenarios.chat, connections=64, records_off=False),
    "latency1": http_scenarios.latency1,
    "streams50": functools.partial(http_scenarios.streams, count=50),
    "streams200": functools.partial(http_scenarios.streams, count=200),
    "slow1000": http_scenarios.slow1000,
    "burst1000": burst_scenarios.burst1000,
    "binary20mb": http_scenarios.binary20mb,
    "idle": http_scenarios.idle,
    "memory": burst_scenarios.memory,
    "writer": record_scenarios.writer,
    "pgdown": record_scenarios.pgdown,
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (1-2 minutes)")
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), metavar="NAME",
        help=f"run only this scenario; one of: {', '.join(SCENARIOS)}",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    return parser.parse_args(argv)


def _cpu_split() -> tuple[set[int], set[int], set[int]]:
    """(gateway CPUs, load-generator CPUs, all CPUs): the first CPU and the second."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("warning: one CPU only; gateway and load share it", file=sys.stderr)
        return {cpus[0]}, {cpus[0]}, set(cpus)
    return {cpus[0]}, {cpus[1]}, set(cpus)


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop children


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def _revision() -> str:
    """The commit measured, marked when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "simple_gateway"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' with local changes to simple_gateway/' if dirty else ''}"


def _changed(before: str, after: str) -> str:
    return before if before == after else f"{before}, changed to {after} during the run"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.only or list(SCENARIOS)
    plan = QUICK if args.quick else FULL
    gateway_cpus, load_cpus, all_cpus = _cpu_split()
    os.sched_setaffinity(0, load_cpus)
    raise_nofile()
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    load_before = _loadavg()
    revision = _revision()
    outcomes: list[Outcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp,
        Processes() as procs,
    ):
        bench = Bench(procs, Path(tmp), plan, gateway_cpus, load_cpus, all_cpus)
        for index, name in enumerate(names, 1):
            print(f"[{index}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                outcome = SCENARIOS[name](bench)
            except Exception as exc:
                traceback.print_exc()
                outcome = Outcome(name, error=f"{type(exc).__name__}: {exc}")
            outcome.seconds = time.monotonic() - began
            outcomes.append(outcome)
            print(f"    done in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
    wall = time.monotonic() - started
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "gateway revision": _changed(revision, _revision()),
        "machine": _machine(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "pinning": (
            f"gateway on CPU {sorted(gateway_cpus)}; mock upstream, load generators and "
            f"driver on CPU {sorted(load_cpus)}"
        ),
        "load average before / after": f"{load_before} / {_loadavg()}",
        "wall time": f"{wall:.0f} s",
    }
    text = report.write(args.out, outcomes, header, bench.problems)
    print(text)
    print(f"written to {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
