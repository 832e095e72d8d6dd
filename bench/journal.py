"""What the journal costs: chat at 16 connections, records on, journal on versus off.

Both gateways run side by side in the same run, on the same pinned CPU, and the load
alternates between them, round after round; the best round of each is compared, because
the machine is shared and a slow round says more about the neighbours than the gateway.
The gateway worker's CPU time per request (user + system, from /proc) is reported too: it
moves much less with the neighbours' load than throughput does, and on a core of its own
the gateway's throughput is the inverse of it.

    python bench/journal.py                 # 5 rounds of 5 s each way (about 2 minutes)
    python bench/journal.py --rounds 3 --seconds 3
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from bench.context import QUICK, Bench
from bench.load import run_load
from bench.procs import Processes, children_of, raise_nofile
from bench.run import _cpu_split

CONNECTIONS = 16
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(master: int) -> float:
    """User + system CPU time of the gateway's workers so far."""
    total = 0
    for pid in children_of(master):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    gateway_cpus, load_cpus, all_cpus = _cpu_split()
    os.sched_setaffinity(0, load_cpus)
    raise_nofile()
    rps: dict[str, list[float]] = {"journal on": [], "journal off": []}
    cpu_ms: dict[str, list[float]] = {"journal on": [], "journal off": []}
    with (
        tempfile.TemporaryDirectory(prefix="sg-journal-") as tmp,
        Processes() as procs,
        contextlib.ExitStack() as stack,
    ):
        bench = Bench(procs, Path(tmp), QUICK, gateway_cpus, load_cpus, all_cpus)
        gateways = {
            "journal on": stack.enter_context(
                bench.gateway("journal-on", {"JOURNAL_ENABLED": "true"})
            ),
            "journal off": stack.enter_context(
                bench.gateway("journal-off", {"JOURNAL_ENABLED": "false"})
            ),
        }
        for round_ in range(args.rounds):
            order = list(gateways) if round_ % 2 == 0 else list(reversed(gateways))
            for name in order:
                before = cpu_seconds(gateways[name].pid)
                result = run_load(
                    procs,
                    gateways[name].url + "/v1/chat/completions",
                    connections=CONNECTIONS,
                    duration=args.seconds,
                    budget=int(30_000 * args.seconds),
                    cpus=load_cpus,
                    warmup=0.0,
                )
                spent = cpu_seconds(gateways[name].pid) - before
                rps[name].append(result.rps)
                cpu_ms[name].append(spent * 1000 / max(result.requests, 1))
                print(
                    f"round {round_ + 1} {name}: {result.rps:,.0f} req/s, "
                    f"{cpu_ms[name][-1]:.3f} CPU ms/request, {result.errors} errors",
                    flush=True,
                )
        problems = bench.problems
    best_on, best_off = max(rps["journal on"]), max(rps["journal off"])
    cost = (1 - best_on / best_off) * 100
    print(
        f"\nchat, {CONNECTIONS} connections, records on, best of {args.rounds} rounds of "
        f"{args.seconds:g} s (shared machine: figures are noisy)"
    )
    print(
        f"journal off: {best_off:,.0f} req/s   journal on: {best_on:,.0f} req/s   "
        f"cost: {cost:.1f}% of throughput"
    )
    for label, pick in (("best", min), ("median", statistics.median)):
        cpu_on, cpu_off = pick(cpu_ms["journal on"]), pick(cpu_ms["journal off"])
        print(
            f"gateway CPU per request, {label}: off {cpu_off:.3f} ms, on {cpu_on:.3f} ms; "
            f"on a core of its own: {(1 - cpu_off / cpu_on) * 100:.1f}% of throughput"
        )
    for line in problems:
        print("gateway log:", line)


if __name__ == "__main__":
    main()
