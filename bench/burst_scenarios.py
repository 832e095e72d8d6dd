"""A burst of a thousand new streams, direct and through a gateway; memory idle and under load.

Both use the lean mock and client of `bench/burst.py`, so that what the burst measures is
the gateway: the aiohttp mock and client of the other stream scenarios spend, on a shared
core, about as long on a thousand connections as the gateway does.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from typing import Any

from bench.context import Bench
from bench.load import run_load
from bench.procs import MemorySampler, free_port, python_command, wait_for_line
from bench.report import Outcome
from bench.stats import kib_to_mb, mb, ms, num, percentile, signed_ms

CHAT_PATH = "/v1/chat/completions"
BURST_STREAMS = 1000
BURST_CHUNKS = 5  # the first at once, then 100 ms apart
BURST_MAX_OVERHEAD_MS = 500.0
IDLE_WARM_MAX_MB = 80.0
PEAK_MAX_MB = 120.0


def _burst_mock(bench: Bench) -> str:
    port = free_port()
    command = python_command("bench.burst", "mock", "--port", str(port))
    command += ["--chunks", str(BURST_CHUNKS), "--delay-ms", "100"]
    child = bench.procs.spawn(command, bench.load_cpus, stdout=subprocess.PIPE)
    wait_for_line(child, b"listening on", timeout=20)
    return f"http://127.0.0.1:{port}"


def _burst(bench: Bench, base: str, count: int) -> dict[str, Any]:
    args = ["client", "--url", base + CHAT_PATH, "--count", str(count), "--timeout", "120"]
    output = bench.procs.run(python_command("bench.burst", *args), bench.load_cpus, 180)
    result: dict[str, Any] = json.loads(output)
    streams = result["streams"]
    ttft = sorted(s["ttft_ms"] for s in streams if s["ttft_ms"] is not None)
    errors = [s["error"] for s in streams if s["error"]]
    return {
        "p50_ms": percentile(ttft, 50),
        "p99_ms": percentile(ttft, 99),
        "done": sum(1 for s in streams if s["done"]),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "elapsed_s": result["elapsed_s"],
    }


def _best_median(values: list[float]) -> str:
    return f"{ms(min(values))} / {ms(statistics.median(values))}"


def burst1000(bench: Bench) -> Outcome:
    """1,000 streams opened at once, rounds alternating direct and gateway."""
    rounds = bench.plan.stream_rounds + 2
    count = BURST_STREAMS
    out = Outcome(f"burst{count}")
    mock = _burst_mock(bench)
    direct: list[dict[str, Any]] = []
    via: list[dict[str, Any]] = []
    env = {"OPENAI_UPSTREAM_URL": mock}
    with bench.gateway(out.name, env) as gw, MemorySampler(gw.pid) as sampler:
        for _ in range(rounds):
            direct.append(_burst(bench, mock, count))
            via.append(_burst(bench, gw.url, count))
    overhead = [g["p99_ms"] - d["p99_ms"] for d, g in zip(direct, via, strict=True)]
    done, errors = sum(g["done"] for g in via), sum(g["errors"] for g in via)
    out.add(
        "TTFT p99, best / median of rounds",
        direct=_best_median([d["p99_ms"] for d in direct]),
        gateway=_best_median([g["p99_ms"] for g in via]),
        diff=f"{signed_ms(min(overhead))} / {signed_ms(statistics.median(overhead))}",
        target=f"overhead ≤ {BURST_MAX_OVERHEAD_MS:g} ms",
        met=statistics.median(overhead) <= BURST_MAX_OVERHEAD_MS,
    )
    out.add(
        "TTFT p50, best / median of rounds",
        direct=_best_median([d["p50_ms"] for d in direct]),
        gateway=_best_median([g["p50_ms"] for g in via]),
    )
    out.add(
        "completed with [DONE] / errors",
        direct=f"{sum(d['done'] for d in direct)} of {count * rounds} / "
        f"{sum(d['errors'] for d in direct)}",
        gateway=f"{done} of {count * rounds} / {errors}",
        target="all, 0 errors",
        met=done == count * rounds and errors == 0,
    )
    peak = max(s.total_kib for s in sampler.samples)
    out.add("gateway RSS at peak, master + worker", gateway=mb(peak))
    out.notes.append(
        f"{rounds} rounds of {count} streams opened at once ({BURST_CHUNKS} chunks, the first at "
        "once, then 100 ms apart), alternating direct and gateway; lean asyncio mock and "
        "client (bench/burst.py); overhead = gateway p99 minus direct p99 of the same round; "
        f"per-round gateway p99: {', '.join(num(g['p99_ms']) for g in via)} ms, direct: "
        f"{', '.join(num(d['p99_ms']) for d in direct)} ms"
    )
    out.raw = {"direct": direct, "gateway": via, "overhead_ms": overhead, "peak_kib": peak}
    return out


def memory(bench: Bench) -> Outcome:
    """Master plus one worker: RSS idle after warm-up, and at its peak under load."""
    out = Outcome("memory")
    mock = _burst_mock(bench)
    with bench.gateway(out.name, {"OPENAI_UPSTREAM_URL": mock}) as gw:
        time.sleep(2.0)  # let the warm-up's records be written
        with MemorySampler(gw.pid) as idle:
            time.sleep(1.0)
        idle_kib = min(s.total_kib for s in idle.samples)
        with MemorySampler(gw.pid) as loaded:
            chat = run_load(
                bench.procs,
                gw.url + CHAT_PATH,
                connections=64,
                duration=bench.plan.load_s,
                budget=30_000 * int(max(bench.plan.load_s, 1)),
                cpus=bench.load_cpus,
                warmup=0.0,
            )
            burst = _burst(bench, gw.url, BURST_STREAMS)
        peak_kib = max(s.total_kib for s in loaded.samples)
        after_kib = loaded.samples[-1].total_kib
    out.add(
        "RSS idle after warm-up, master + 1 worker",
        gateway=mb(idle_kib),
        target=f"≤ {IDLE_WARM_MAX_MB:g} MB",
        met=kib_to_mb(idle_kib) <= IDLE_WARM_MAX_MB,
    )
    out.add(
        "RSS at peak under load, master + 1 worker",
        gateway=mb(peak_kib),
        target=f"≤ {PEAK_MAX_MB:g} MB",
        met=kib_to_mb(peak_kib) <= PEAK_MAX_MB,
    )
    out.add("RSS right after the load", gateway=mb(after_kib))
    out.notes.append(
        f"idle: 2 s after the warm-up, lowest of 1 s of samples; load: chat at 64 connections "
        f"for {bench.plan.load_s:g} s ({num(chat.rps)} req/s), then {BURST_STREAMS} streams "
        f"at once ({burst['done']} done, {burst['errors']} errors); RSS sampled every 50 ms"
    )
    out.raw = {"idle_kib": idle_kib, "peak_kib": peak_kib, "after_kib": after_kib}
    return out
