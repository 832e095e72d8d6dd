"""What the journal costs: chat at 16 connections, records on, journal on versus off.

Both gateways run side by side in the same run, on the same pinned CPU, and the load
alternates between them, round after round; the best round of each is compared, because
the machine is shared and a slow round says more about the neighbours than the gateway.

    python bench/journal.py                 # 5 rounds of 5 s each way (about 2 minutes)
    python bench/journal.py --rounds 3 --seconds 3
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import tempfile
from pathlib import Path

from bench.context import QUICK, Bench
from bench.load import run_load
from bench.procs import Processes, raise_nofile
from bench.run import _cpu_split

CONNECTIONS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    gateway_cpus, load_cpus, all_cpus = _cpu_split()
    os.sched_setaffinity(0, load_cpus)
    raise_nofile()
    rps: dict[str, list[float]] = {"journal on": [], "journal off": []}
    with (
        tempfile.TemporaryDirectory(prefix="sg-journal-") as tmp,
        Processes() as procs,
        contextlib.ExitStack() as stack,
    ):
        bench = Bench(procs, Path(tmp), QUICK, gateway_cpus, load_cpus, all_cpus)
        urls = {
            "journal on": stack.enter_context(
                bench.gateway("journal-on", {"JOURNAL_ENABLED": "true"})
            ).url,
            "journal off": stack.enter_context(
                bench.gateway("journal-off", {"JOURNAL_ENABLED": "false"})
            ).url,
        }
        for round_ in range(args.rounds):
            order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
            for name in order:
                result = run_load(
                    procs,
                    urls[name] + "/v1/chat/completions",
                    connections=CONNECTIONS,
                    duration=args.seconds,
                    budget=int(30_000 * args.seconds),
                    cpus=load_cpus,
                    warmup=1.0,
                )
                rps[name].append(result.rps)
                print(
                    f"round {round_ + 1} {name}: {result.rps:,.0f} req/s, {result.errors} errors",
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
    for line in problems:
        print("gateway log:", line)


if __name__ == "__main__":
    main()
