"""Slow clients holding half-sent request heads, and a normal client beside them.

`python bench/slowloris.py [--connections 5000]` starts an out-of-the-box gateway (a worker
per CPU, default threads) in front of the mock upstream, opens the given number of
connections that each send part of a request head and then nothing, and, while they are
held, times normal chat completions and `/health` through the same gateway. It prints the
latencies and whether every normal request was answered, then closes every connection.
Everything stays on 127.0.0.1; the held connections are bounded by `--connections`.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.context import Bench, Plan
from bench.procs import Processes, raise_nofile

PARTIAL_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nX-Slow: "


def hold(port: int, count: int) -> list[socket.socket]:
    held: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(PARTIAL_HEAD)
        held.append(sock)
    return held


def time_requests(base: str, count: int) -> dict[str, object]:
    latencies: list[float] = []
    failures = 0
    with requests.Session() as session:
        for index in range(count):
            started = time.perf_counter()
            try:
                if index % 2:
                    response = session.get(f"{base}/health", timeout=30)
                else:
                    body = {"model": "gpt-4o-mini"}
                    response = session.post(f"{base}/v1/chat/completions", json=body, timeout=30)
                failures += response.status_code != 200
            except requests.RequestException:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "requests": count,
        "failures": failures,
        "p50_ms": statistics.median(latencies),
        "max_ms": latencies[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    raise_nofile()
    cpus = set(range(len(__import__("os").sched_getaffinity(0))))
    with Processes() as procs, tempfile.TemporaryDirectory() as folder:
        bench = Bench(procs, Path(folder), Plan(), cpus, cpus, cpus)
        # A header deadline longer than the run: every slow client is still held at the end.
        with bench.gateway("slowloris", {"HEADER_TIMEOUT": "120"}, default=True) as gw:
            port = int(gw.url.rsplit(":", 1)[1])
            baseline = time_requests(gw.url, args.requests)
            started = time.perf_counter()
            held = hold(port, args.connections)
            opened_s = time.perf_counter() - started
            try:
                during = time_requests(gw.url, args.requests)
                still_open = sum(1 for sock in held if _open(sock))
            finally:
                for sock in held:
                    sock.close()
    result = {
        "connections": args.connections,
        "opened_in_s": round(opened_s, 2),
        "still_held_after": still_open,
        "before": baseline,
        "while_held": during,
    }
    print(json.dumps(result, indent=2))
    answered = during["failures"] == 0 and float(during["max_ms"]) <= 1000  # type: ignore[arg-type]
    return 0 if answered else 1


def _open(sock: socket.socket) -> bool:
    """Still connected and not answered: nothing to read yet."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # b"": closed; bytes: answered
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


if __name__ == "__main__":
    raise SystemExit(main())
