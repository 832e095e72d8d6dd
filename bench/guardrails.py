"""What three local input guardrails (secrets, pii, keywords) cost, versus none.

Two gateways run side by side in the same run, one without guardrails and one with the
three built-ins on input in one priority group, on the same pinned CPU. Measured:

- added p50 latency at one connection: sequential chat requests (a ~1 KB prompt, to give
  the checks some text), alternating between the gateways, round after round;
- non-streaming throughput at 16 connections (the shared chat body of bench/load.py),
  alternating, best round of each.

The machine is shared: figures are noisy, the best round of each says more than any one.

    python bench/guardrails.py                    # 5 rounds (about 2 minutes)
    python bench/guardrails.py --rounds 3 --seconds 3 --requests 200
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.context import QUICK, Bench
from bench.load import run_load
from bench.procs import Processes, raise_nofile
from bench.run import _cpu_split

CONNECTIONS = 16
CONFIG = """
guardrails:
  input:
    - {name: no-secrets, type: secrets, action: block, priority: 0}
    - {name: pii, type: pii, action: redact, priority: 0}
    - {name: banned, type: keywords, words: [confidential, internal only], priority: 0}
"""
PROMPT = (
    "Please summarise the following notes for the weekly report. The team met on Monday "
    "to review the release plan; the main risks are the database migration and the new "
    "billing integration. Alice will prepare the rollback steps, Bob will check the load "
    "tests, and Carol will write the customer announcement. We agreed to freeze features "
    "on Thursday and to ship on the following Tuesday if the checks pass. "
) * 3
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
SLOW_WEBHOOKS = """
guardrails:
  input:
    - {name: slow-a, type: webhook, url: "WEBHOOK/check?delay_ms=300", priority: 0}
    - {name: slow-b, type: webhook, url: "WEBHOOK/check?delay_ms=300", priority: PRIORITY}
"""


def latencies(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    """Milliseconds per sequential request, one keep-alive connection per gateway; the
    gateways take turns request by request, so a noisy moment hits both alike."""
    out: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: requests.Session() for name in urls}
    try:
        for index in range(n):
            names = list(urls) if index % 2 == 0 else list(reversed(urls))
            for name in names:
                start = time.perf_counter()
                reply = sessions[name].post(urls[name], json=BODY, timeout=30)
                out[name].append((time.perf_counter() - start) * 1000)
                reply.raise_for_status()
    finally:
        for session in sessions.values():
            session.close()
    return out


def stage_cost_us(n: int = 2000) -> float:
    """CPU time of the input stage alone, in process: read, parse, check, put back."""
    import io
    import json

    from simple_gateway.guardrails import Guardrails
    from simple_gateway.providers import Route, build_provider, register_builtin_types
    from simple_gateway.records.model import Record
    from simple_gateway.settings import load_settings

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write(CONFIG)
        config.flush()
        settings = load_settings(environ={}, config_path=config.name, dotenv_path=None)
    guardrails = Guardrails.from_settings(settings)
    assert guardrails is not None
    register_builtin_types()
    route = Route(build_provider(settings.providers["openai"]), "/v1/chat/completions")
    data = json.dumps(BODY).encode()
    start = time.process_time()
    for _ in range(n):
        environ = {
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
        record = Record("id", "id", 0.0, "openai", "POST", "/v1/chat/completions")
        guard = guardrails.begin("id", record, route, environ, {})
        assert guard.answer is None
    guardrails.stop()
    return (time.process_time() - start) / n * 1e6


def webhook_groups(bench: Bench, stack: contextlib.ExitStack, tmp: Path, n: int = 5) -> None:
    """Two 300 ms webhooks: added latency in one priority group, and in two."""
    from tests.webhook import WebhookServer

    hook = stack.enter_context(WebhookServer())
    urls = {}
    for label, priority in (("one group", "0"), ("two groups", "1")):
        path = tmp / f"webhooks-{priority}.yaml"
        path.write_text(SLOW_WEBHOOKS.replace("WEBHOOK", hook.url).replace("PRIORITY", priority))
        gateway = stack.enter_context(
            bench.gateway(f"hooks-{priority}", {"GATEWAY_CONFIG": str(path)})
        )
        urls[label] = gateway.url + "/v1/chat/completions"
    plain = stack.enter_context(bench.gateway("hooks-none")).url + "/v1/chat/completions"
    base = statistics.median(latencies({"none": plain}, n)["none"])
    for label, values in latencies(urls, n).items():
        print(f"two 300 ms webhooks, {label}: +{statistics.median(values) - base:.0f} ms p50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    gateway_cpus, load_cpus, all_cpus = _cpu_split()
    os.sched_setaffinity(0, load_cpus)
    raise_nofile()
    p50: dict[str, list[float]] = {"none": [], "three": []}
    rps: dict[str, list[float]] = {"none": [], "three": []}
    with (
        tempfile.TemporaryDirectory(prefix="sg-guardrails-") as tmp,
        Processes() as procs,
        contextlib.ExitStack() as stack,
    ):
        config = Path(tmp) / "guardrails.yaml"
        config.write_text(CONFIG)
        bench = Bench(procs, Path(tmp), QUICK, gateway_cpus, load_cpus, all_cpus)
        urls = {
            "none": stack.enter_context(bench.gateway("none")).url,
            "three": stack.enter_context(
                bench.gateway("three", {"GATEWAY_CONFIG": str(config)})
            ).url,
        }
        chats = {name: url + "/v1/chat/completions" for name, url in urls.items()}
        latencies(chats, 50)  # warm both
        for round_ in range(args.rounds):
            for name, values in latencies(chats, args.requests).items():
                p50[name].append(statistics.median(values))
            order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
            for name in order:
                chat = chats[name]
                result = run_load(
                    procs,
                    chat,
                    connections=CONNECTIONS,
                    duration=args.seconds,
                    budget=int(30_000 * args.seconds),
                    cpus=load_cpus,
                    warmup=0.5,
                )
                rps[name].append(result.rps)
                print(
                    f"round {round_ + 1} {name:5}: p50 {p50[name][-1]:.2f} ms at 1 connection, "
                    f"{result.rps:,.0f} req/s at {CONNECTIONS} ({result.errors} errors)",
                    flush=True,
                )
        webhook_groups(bench, stack, Path(tmp))
    cost = stage_cost_us()
    added = statistics.median(a - b for a, b in zip(p50["three"], p50["none"], strict=True))
    drop = (1 - max(rps["three"]) / max(rps["none"])) * 100
    print(
        f"\nthree local input guardrails (secrets, pii, keywords) vs none, best of "
        f"{args.rounds} rounds (shared machine: figures are noisy)"
    )
    print(
        f"p50 at 1 connection (requests interleaved): {statistics.median(p50['none']):.2f} ms "
        f"-> {statistics.median(p50['three']):.2f} ms, added {added:+.2f} ms (median of rounds)"
    )
    print(f"input stage alone, in process: {cost:.0f} us of CPU per request")
    print(
        f"throughput at {CONNECTIONS} connections: {max(rps['none']):,.0f} -> "
        f"{max(rps['three']):,.0f} req/s ({drop:.1f}% lower)"
    )


if __name__ == "__main__":
    main()
