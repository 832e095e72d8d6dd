"""A closed-loop POST load generator (aiohttp), run as `python -m bench.pyload`.

The fallback when wrk is missing, and the generator of the `pgdown` scenario, where every
request must be accounted for: each connection stops starting requests at the deadline
but finishes the one in flight, so `answered` is exactly what the server answered. With
`--tag` each request carries a unique `x-bench-seq` header to find it in the records.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.load import CHAT_BODY
from bench.stats import percentile


class _Tally:
    def __init__(self) -> None:
        self.answered = 0
        self.non_2xx = 0
        self.failed = 0
        self.latencies: list[float] = []


async def _connection(
    index: int,
    session: aiohttp.ClientSession,
    url: str,
    deadline: float,
    budget: int,
    tally: _Tally,
    tag: bool,
) -> None:
    headers = {"Content-Type": "application/json"}
    sequence = 0
    while time.monotonic() < deadline and tally.answered + tally.failed < budget:
        sequence += 1
        if tag:
            headers["x-bench-seq"] = f"{index}-{sequence}"
        started = time.perf_counter()
        try:
            async with session.post(url, data=CHAT_BODY, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            tally.failed += 1
            await asyncio.sleep(0.01)
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.answered += 1
        if not 200 <= status < 300:
            tally.non_2xx += 1


async def _main(args: argparse.Namespace) -> dict[str, object]:
    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        deadline = started + args.duration
        await asyncio.gather(
            *(
                _connection(i, session, args.url, deadline, args.budget, tally, args.tag)
                for i in range(args.connections)
            )
        )
        elapsed = time.monotonic() - started
    ms = sorted(x * 1000 for x in tally.latencies)
    return {
        "answered": tally.answered,
        "non_2xx": tally.non_2xx,
        "failed": tally.failed,
        "sent": tally.answered + tally.failed,
        "duration_s": elapsed,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--tag", action="store_true")
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("only http://127.0.0.1 targets are allowed")
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
