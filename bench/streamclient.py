"""Concurrent streaming chat requests (aiohttp), run as `python -m bench.streamclient`.

Opens `--count` streams at once (connector limit 0: one connection each) and, per stream,
records the time to first token (request start to the first bytes holding `data:`), the
largest gap between consecutive SSE events, the number of events, and whether the stream
ended with `data: [DONE]`. Prints one JSON object with a list of per-stream results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.procs import raise_nofile

_DONE = b"data: [DONE]"


async def _stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    started = time.perf_counter()
    ttft: float | None = None
    last: float | None = None
    max_gap = 0.0
    events = 0
    done = False
    error: str | None = None
    pending = b""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                await response.read()
                raise RuntimeError(f"HTTP {response.status}")
            async for data in response.content.iter_any():
                now = time.perf_counter()
                pending += data
                if ttft is None and b"data:" in pending:
                    ttft = now - started
                while (cut := pending.find(b"\n\n")) >= 0:
                    event, pending = pending[:cut], pending[cut + 2 :]
                    if last is not None:
                        max_gap = max(max_gap, now - last)
                    last = now
                    events += 1
                    done = event.strip() == _DONE
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    if error is None and not done:
        error = "ended without data: [DONE]"
    return {
        "ttft_ms": None if ttft is None else ttft * 1000,
        "max_gap_ms": max_gap * 1000,
        "events": events,
        "done": done,
        "error": error,
        "total_ms": (time.perf_counter() - started) * 1000,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "Count slowly."}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "x-mock-chunks": str(args.chunks),
        "x-mock-chunk-delay-ms": str(args.delay_ms),
    }
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        streams = await asyncio.gather(
            *(_stream(session, args.url, body, headers) for _ in range(args.count))
        )
        elapsed = time.monotonic() - started
    return {"streams": streams, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streamclient")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--delay-ms", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("only http://127.0.0.1 targets are allowed")
    limit = raise_nofile(max(4096, args.count * 2 + 256))
    if limit < args.count + 64:
        parser.error(f"open-file limit {limit} is too low for {args.count} streams: ulimit -n")
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
