"""Scenarios over HTTP: direct to the mock upstream versus through a gateway, side by side."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

import requests

from bench.context import Bench
from bench.load import LoadResult, run_load
from bench.procs import (
    MemorySampler,
    children_of,
    free_port,
    proc_status_kib,
    pss_kib,
    python_command,
)
from bench.report import Outcome
from bench.stats import kib_to_mb, mb, ms, num, pct_change, percentile, signed_ms, signed_pct

CHAT_PATH = "/v1/chat/completions"
CHAT16_MIN_RPS = 1_800
RECORDS_MAX_COST_PCT = 10.0
LATENCY1_MAX_ADDED_MS = 0.5
LATENCY1_MAX_ADDED_P99_MS = 2.0
BINARY_SIZE = 20 * 1024 * 1024
BINARY_MIN_MBPS = 300.0
BINARY_MAX_RSS_MB = 120.0
IDLE_MAX_RSS_MB = 100.0
_BUDGET_PER_S = 30_000  # request cap of every load run: well above what the mock can serve


def _load(bench: Bench, base: str, connections: int, seconds: float, warmup: float) -> LoadResult:
    return run_load(
        bench.procs,
        base + CHAT_PATH,
        connections=connections,
        duration=seconds,
        budget=int(_BUDGET_PER_S * max(seconds, 1.0)),
        cpus=bench.load_cpus,
        warmup=warmup,
    )


def chat(bench: Bench, connections: int, *, records_off: bool) -> Outcome:
    """Non-streaming chat at a fixed number of connections; optionally records off too."""
    plan = bench.plan
    out = Outcome(f"chat{connections}")
    direct = _load(bench, bench.mock_url, connections, plan.load_s, plan.warmup_s)
    with bench.gateway(f"chat{connections}-records-on") as gw:
        on = _load(bench, gw.url, connections, plan.load_s, plan.warmup_s)
    off = None
    if records_off:
        with bench.gateway(f"chat{connections}-records-off", {"RECORDS_ENABLED": "false"}) as gw:
            off = _load(bench, gw.url, connections, plan.load_s, plan.warmup_s)
    target = connections == 16
    out.add(
        "requests/s (records on)",
        direct=num(direct.rps),
        gateway=num(on.rps),
        diff=signed_pct(pct_change(direct.rps, on.rps)),
        target=f"≥ {num(CHAT16_MIN_RPS)}" if target else "",
        met=on.rps >= CHAT16_MIN_RPS if target else None,
    )
    for label, attr in (("p50 latency", "p50_ms"), ("p99 latency", "p99_ms")):
        a, b = getattr(direct, attr), getattr(on, attr)
        out.add(label, direct=ms(a), gateway=ms(b), diff=signed_ms(b - a))
    out.add("errors", direct=str(direct.errors), gateway=str(on.errors))
    if off is not None:
        cost = (1 - on.rps / off.rps) * 100 if off.rps else float("nan")
        out.add(
            "requests/s (records off)",
            direct=num(direct.rps),
            gateway=num(off.rps),
            diff=signed_pct(pct_change(direct.rps, off.rps)),
        )
        out.add("p50 / p99 latency (records off)", gateway=f"{ms(off.p50_ms)} / {ms(off.p99_ms)}")
        out.add(
            "records on costs (share of records-off throughput)",
            gateway=f"{cost:.1f}%",
            target=f"≤ {RECORDS_MAX_COST_PCT:.0f}%",
            met=cost <= RECORDS_MAX_COST_PCT,
        )
        out.add("errors (records off)", gateway=str(off.errors))
    out.notes.append(
        f"{direct.tool}, {connections} connections, {plan.warmup_s:g} s warm-up then "
        f"{plan.load_s:g} s; small JSON body with model and messages"
    )
    out.raw = {"direct": direct.as_dict(), "records_on": on.as_dict()}
    if off is not None:
        out.raw["records_off"] = off.as_dict()
    return out


def latency1(bench: Bench) -> Outcome:
    """One connection: the latency the gateway adds to each exchange."""
    plan = bench.plan
    out = Outcome("latency1")
    warmup = min(1.0, plan.warmup_s)
    direct = _load(bench, bench.mock_url, 1, plan.latency_s, warmup)
    with bench.gateway("latency1") as gw:
        via = _load(bench, gw.url, 1, plan.latency_s, warmup)
    added50, added99 = via.p50_ms - direct.p50_ms, via.p99_ms - direct.p99_ms
    out.add(
        "p50 latency",
        direct=ms(direct.p50_ms),
        gateway=ms(via.p50_ms),
        diff=signed_ms(added50),
        target=f"added ≤ {LATENCY1_MAX_ADDED_MS} ms",
        met=added50 <= LATENCY1_MAX_ADDED_MS,
    )
    out.add(
        "p99 latency",
        direct=ms(direct.p99_ms),
        gateway=ms(via.p99_ms),
        diff=signed_ms(added99),
        target=f"added ≤ {LATENCY1_MAX_ADDED_P99_MS:g} ms",
        met=added99 <= LATENCY1_MAX_ADDED_P99_MS,
    )
    out.add("requests/s", direct=num(direct.rps), gateway=num(via.rps))
    out.add("errors", direct=str(direct.errors), gateway=str(via.errors))
    out.raw = {"direct": direct.as_dict(), "gateway": via.as_dict()}
    return out


def _stream_run(bench: Bench, base: str, count: int, chunks: int, delay_ms: int) -> dict[str, Any]:
    timeout = chunks * delay_ms / 1000 + 120  # generous: a slow stream is still measured
    args = ["--url", base + CHAT_PATH, "--count", str(count), "--chunks", str(chunks)]
    args += ["--delay-ms", str(delay_ms), "--timeout", str(timeout)]
    output = bench.procs.run(
        python_command("bench.streamclient", *args), bench.load_cpus, timeout + 30
    )
    return json.loads(output)  # type: ignore[no-any-return]


def _stream_summary(streams: list[dict[str, Any]]) -> dict[str, Any]:
    ttft = sorted(s["ttft_ms"] for s in streams if s["ttft_ms"] is not None)
    gaps = sorted(s["max_gap_ms"] for s in streams if s["error"] is None)
    errors = Counter(s["error"] for s in streams if s["error"])
    return {
        "streams": len(streams),
        "done": sum(1 for s in streams if s["done"]),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p99_ms": percentile(ttft, 99),
        "gap_p99_ms": percentile(gaps, 99),
        "gap_max_ms": gaps[-1] if gaps else float("nan"),
    }


_STREAM_TARGETS = {  # count: (overhead p50 max, overhead p99 max, gap excess max, zero errors)
    50: (5.0, 15.0, 10.0, False),
    200: (None, 150.0, None, True),
}


def streams(bench: Bench, count: int) -> Outcome:
    """`count` concurrent streams (50 chunks, 20 ms apart), rounds alternating direct/gateway."""
    plan = bench.plan
    out = Outcome(f"streams{count}")
    samples: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
    with bench.gateway(f"streams{count}") as gw:
        for _ in range(plan.stream_rounds):
            for label, base in (("direct", bench.mock_url), ("gateway", gw.url)):
                samples[label] += _stream_run(bench, base, count, 50, 20)["streams"]
    d, g = _stream_summary(samples["direct"]), _stream_summary(samples["gateway"])
    max50, max99, max_gap, zero_errors = _STREAM_TARGETS.get(count, (None, None, None, False))
    over50, over99 = g["ttft_p50_ms"] - d["ttft_p50_ms"], g["ttft_p99_ms"] - d["ttft_p99_ms"]
    gap_excess = g["gap_p99_ms"] - d["gap_p99_ms"]
    out.add(
        "TTFT p50",
        direct=ms(d["ttft_p50_ms"]),
        gateway=ms(g["ttft_p50_ms"]),
        diff=signed_ms(over50),
        target="" if max50 is None else f"overhead ≤ {max50:g} ms",
        met=None if max50 is None else over50 <= max50,
    )
    out.add(
        "TTFT p99",
        direct=ms(d["ttft_p99_ms"]),
        gateway=ms(g["ttft_p99_ms"]),
        diff=signed_ms(over99),
        target="" if max99 is None else f"overhead ≤ {max99:g} ms",
        met=None if max99 is None else over99 <= max99,
    )
    out.add(
        "largest inter-chunk gap, p99 over streams",
        direct=ms(d["gap_p99_ms"]),
        gateway=ms(g["gap_p99_ms"]),
        diff=signed_ms(gap_excess),
        target="" if max_gap is None else f"within {max_gap:g} ms of direct",
        met=None if max_gap is None else gap_excess <= max_gap,
    )
    out.add(
        "completed with [DONE] / errors",
        direct=f"{d['done']} of {d['streams']} / {d['errors']}",
        gateway=f"{g['done']} of {g['streams']} / {g['errors']}",
        target="0 errors" if zero_errors else "",
        met=(g["errors"] == 0 and g["done"] == g["streams"]) if zero_errors else None,
    )
    for label, summary in (("direct", d), ("gateway", g)):
        if summary["error_kinds"]:
            out.notes.append(f"{label} errors: {summary['error_kinds']}")
    out.notes.append(
        f"{plan.stream_rounds} round(s) of {count} streams each way, all samples pooled; "
        "overhead = gateway percentile minus direct percentile"
    )
    out.raw = {"direct": d, "gateway": g, "rounds": plan.stream_rounds}
    return out


def slow1000(bench: Bench) -> Outcome:
    """Many slow streams held open at once through the gateway only."""
    plan = bench.plan
    count, chunks = plan.slow_streams, plan.slow_chunks
    out = Outcome(f"slow{count}")
    with bench.gateway(out.name) as gw, MemorySampler(gw.pid) as sampler:
        result = _stream_run(bench, gw.url, count, chunks, 1000)
        hwm = sampler.high_water()
    s = _stream_summary(result["streams"])
    worker = max(x.worker_kib for x in sampler.samples)
    total = max(x.total_kib for x in sampler.samples)
    out.add(
        "streams completed with [DONE]",
        gateway=f"{s['done']} of {count}",
        target=f"all {num(count)}",
        met=s["done"] == count,
    )
    out.add("errors", gateway=str(s["errors"]), target="0", met=s["errors"] == 0)
    out.add("TTFT p50 / p99", gateway=f"{ms(s['ttft_p50_ms'])} / {ms(s['ttft_p99_ms'])}")
    out.add("largest inter-chunk gap, p99", gateway=ms(s["gap_p99_ms"]))
    out.add("gateway RSS at peak: worker / total", gateway=f"{mb(worker)} / {mb(total)}")
    if s["error_kinds"]:
        out.notes.append(f"errors: {s['error_kinds']}")
    out.notes.append(
        f"{count} streams opened at once, {chunks} chunks 1 s apart; all done after "
        f"{result['elapsed_s']:.1f} s (one stream alone takes {chunks + 2} s)"
    )
    out.raw = {
        "summary": s,
        "elapsed_s": result["elapsed_s"],
        "peak_worker_kib": worker,
        "peak_total_kib": total,
        "hwm_kib": hwm,
    }
    return out


def _fetch_binary(base: str, count: int) -> dict[str, float]:
    session = requests.Session()
    total = 0
    started = time.perf_counter()
    for _ in range(count):
        with session.get(f"{base}/v1/binary/{BINARY_SIZE}", stream=True, timeout=60) as response:
            response.raise_for_status()
            got = sum(len(chunk) for chunk in response.iter_content(1 << 20))
        if got != BINARY_SIZE:
            raise RuntimeError(f"{base}: got {got} of {BINARY_SIZE} bytes")
        total += got
    elapsed = time.perf_counter() - started
    return {"bytes": total, "seconds": elapsed, "mb_per_s": total / elapsed / 1e6}


def binary20mb(bench: Bench) -> Outcome:
    """Sequential 20 MiB downloads; the gateway streams them and keeps a file copy."""
    count = bench.plan.binary_gets
    out = Outcome("binary20mb")
    direct = _fetch_binary(bench.mock_url, count)
    with bench.gateway("binary20mb") as gw, MemorySampler(gw.pid) as sampler:
        via = _fetch_binary(gw.url, count)
        hwm = sampler.high_water()
    worker = max(x.worker_kib for x in sampler.samples)
    total = max(x.total_kib for x in sampler.samples)
    master = max(x.master_kib for x in sampler.samples)
    judged = max(total, hwm["worker"] + master)  # a peak between two samples counts too
    out.add(
        "throughput",
        direct=f"{direct['mb_per_s']:,.0f} MB/s",
        gateway=f"{via['mb_per_s']:,.0f} MB/s",
        diff=signed_pct(pct_change(direct["mb_per_s"], via["mb_per_s"])),
        target=f"≥ {BINARY_MIN_MBPS:.0f} MB/s",
        met=via["mb_per_s"] >= BINARY_MIN_MBPS,
    )
    out.add(
        "gateway peak RSS: worker / master + worker",
        gateway=f"{mb(worker)} / {mb(total)}",
        target=f"≤ {BINARY_MAX_RSS_MB:.0f} MB",
        met=kib_to_mb(judged) <= BINARY_MAX_RSS_MB,
    )
    out.add("worker VmHWM", gateway=mb(hwm["worker"]))
    out.notes.append(
        f"{count} sequential GETs of /v1/binary/{BINARY_SIZE} each way, read in 1 MiB chunks; "
        "RSS sampled every 50 ms, the target judged on max(sampled total, worker VmHWM + master)"
    )
    out.raw = {"direct": direct, "gateway": via, "peak_worker_kib": worker}
    out.raw.update(peak_total_kib=total, peak_master_kib=master, hwm_kib=hwm)
    return out


def idle(bench: Bench) -> Outcome:
    """RSS of an out-of-the-box gateway (a worker per CPU) 3 s after it became healthy."""
    out = Outcome("idle")
    with bench.gateway("idle", default=True, warm=False) as gw:
        time.sleep(3.0)
        workers = children_of(gw.pid)
        master = proc_status_kib(gw.pid, "VmRSS")["VmRSS"]
        rss = [proc_status_kib(p, "VmRSS")["VmRSS"] for p in workers]
        pss = pss_kib(gw.pid) + sum(pss_kib(p) for p in workers)
    total = master + sum(rss)
    out.add(
        f"RSS, master + {len(workers)} workers",
        gateway=mb(total),
        target=f"≤ {IDLE_MAX_RSS_MB:.0f} MB",
        met=kib_to_mb(total) <= IDLE_MAX_RSS_MB,
    )
    out.add("RSS master / each worker", gateway=f"{mb(master)} / {', '.join(mb(r) for r in rss)}")
    out.add("PSS, master + workers", gateway=mb(pss))
    out.notes.append(
        f"`python -m simple_gateway` with only HOST, PORT, data paths and the upstream URL set, "
        f"on {len(bench.all_cpus)} CPUs; RSS counts pages shared after the fork in every "
        "process, PSS splits them"
    )
    out.raw = {"master_kib": master, "workers_kib": rss, "total_kib": total, "pss_kib": pss}
    return out


def reference(bench: Bench) -> Outcome:
    """A plain Flask + requests proxy under the same load: the yardstick for the targets."""
    plan = bench.plan
    out = Outcome("reference")
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "64", "-w", "1"]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "bench.plain_proxy:app"]
    env = {**os.environ, "PLAIN_UPSTREAM": bench.mock_url}
    child = bench.procs.spawn(command, bench.gateway_cpus, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.post(url + CHAT_PATH, json={"model": "m"}, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)  # bounded poll for the child to bind its port
        chat = _load(bench, url, 16, plan.load_s, plan.warmup_s)
        one = _load(bench, url, 1, plan.latency_s, min(1.0, plan.warmup_s))
        direct = _load(bench, bench.mock_url, 1, plan.latency_s, min(1.0, plan.warmup_s))
    finally:
        bench.procs.stop(child)
    out.add("requests/s at 16 connections", gateway=num(chat.rps))
    out.add(
        "p50 latency at 1 connection",
        direct=ms(direct.p50_ms),
        gateway=ms(one.p50_ms),
        diff=signed_ms(one.p50_ms - direct.p50_ms),
    )
    out.notes.append(
        "a plain Flask + requests proxy (bench/plain_proxy.py) under gunicorn gthread, on the "
        "gateway's CPU: the issue quotes ~1,000 req/s and +0.9 ms for it on its reference machine"
    )
    out.raw = {"chat16": chat.as_dict(), "latency1": one.as_dict(), "direct": direct.as_dict()}
    return out
