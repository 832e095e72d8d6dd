"""Provider routing benchmark: translation overhead, translated stream gaps, failover time.

    python bench/providers.py                 # about a minute
    python bench/providers.py --requests 500  # more samples

Three figures, each measured against its own baseline in the same run:

1. Translation overhead: p50 of the gateway's added latency (gateway minus direct to the
   same mock) for a typical chat request sent to a plain model (verbatim pass-through)
   and to an alias served by an Anthropic-format mock (translated both ways).
2. Stream gaps: the largest gap between chunks a client sees in a stream whose events
   the mock spaces evenly, pass-through versus translated (Anthropic and Gemini).
3. Failover: the time to an answer for an alias whose first deployment is down, against
   the same alias with only the healthy deployment: connection refused, and a connect
   timeout (a listening socket whose backlog is full; the deployment's timeout is 0.5 s).

The mocks run in this process (aiohttp on a thread), the gateway in a child with one
worker. The machine is shared and small (2 cores): figures are noisy, compare them
within one run rather than across runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.gateway import GatewayProcess, free_port  # noqa: E402
from tests.routing_mocks import ProviderMock  # noqa: E402

CHAT = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "What is the capital of France? " * 8},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
    "temperature": 0.2,
    "max_tokens": 200,
}
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-key-000"}


def timed_posts(
    url: str, path: str, body: dict[str, Any], count: int, warmup: int = 20
) -> list[float]:
    """Milliseconds per request over one keep-alive connection, after a warm-up."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    data = json.dumps(body).encode()
    times = []
    try:
        for index in range(count + warmup):
            start = time.perf_counter()
            conn.request("POST", path, data, HEADERS)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            if index >= warmup:
                times.append(elapsed)
    finally:
        conn.close()
    return times


def largest_gaps(url: str, path: str, body: dict[str, Any], streams: int) -> list[float]:
    """The largest gap between chunks (ms) of each stream, read as the client sees them."""
    host, port = url.removeprefix("http://").split(":")
    gaps = []
    for _ in range(streams):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", path, json.dumps({**body, "stream": True}).encode(), HEADERS)
        response = conn.getresponse()
        last, largest = None, 0.0
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            now = time.perf_counter()
            if last is not None:
                largest = max(largest, (now - last) * 1000)
            last = now
        conn.close()
        gaps.append(largest)
    return gaps


def p50(values: list[float]) -> float:
    return statistics.median(values)


def start_gateway(
    workdir: Path, providers: dict[str, Any], models: dict[str, Any]
) -> GatewayProcess:
    config = workdir / "gateway.yaml"
    # No cooldown: every request meets the down deployment first, as the first one after
    # an outage does; no retries beyond one attempt per deployment.
    routing = {"cooldown": 0, "retries": 0}
    config.write_text(
        yaml.safe_dump({"providers": providers, "models": models, "routing": routing})
    )
    env = {
        "GATEWAY_CONFIG": str(config),
        "OPENAI_UPSTREAM_URL": providers["openai"]["base_url"],
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "error",
    }
    return GatewayProcess(workdir, env).start()


def overhead(
    gateway: GatewayProcess, openai: ProviderMock, anthropic: ProviderMock, n: int
) -> None:
    direct_plain = timed_posts(openai.url, "/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, n)
    via_plain = timed_posts(gateway.url, "/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, n)
    anthropic_body = {
        "model": "claude-sonnet-4-5",
        "system": CHAT["messages"][0]["content"],
        "messages": CHAT["messages"][1:],
        "max_tokens": 200,
    }
    direct_native = timed_posts(anthropic.url, "/v1/messages", anthropic_body, n)
    via_alias = timed_posts(gateway.url, "/v1/chat/completions", {**CHAT, "model": "claude"}, n)
    plain_added = p50(via_plain) - p50(direct_plain)
    alias_added = p50(via_alias) - p50(direct_native)
    print(f"\n1. translation overhead ({n} sequential requests each, p50)")
    print(f"   direct to OpenAI-format mock      {p50(direct_plain):7.2f} ms")
    print(f"   gateway, plain model (verbatim)   {p50(via_plain):7.2f} ms  (+{plain_added:.2f} ms)")
    print(f"   direct to Anthropic-format mock   {p50(direct_native):7.2f} ms")
    print(f"   gateway, alias (translated)       {p50(via_alias):7.2f} ms  (+{alias_added:.2f} ms)")
    print(f"   translation adds                  {alias_added - plain_added:+7.2f} ms p50")


def gaps(gateway: GatewayProcess, mocks: list[ProviderMock], streams: int, delay: float) -> None:
    for mock in mocks:
        mock.chunks, mock.chunk_delay = 20, delay
    print(
        f"\n2. largest gap between chunks ({streams} streams, events every {delay * 1000:.0f} ms)"
    )
    for label, model in (
        ("pass-through", "gpt-4o"),
        ("translated from Anthropic", "claude"),
        ("translated from Gemini", "flash"),
    ):
        found = largest_gaps(gateway.url, "/v1/chat/completions", {**CHAT, "model": model}, streams)
        print(f"   {label:28s} p50 {p50(found):6.1f} ms   max {max(found):6.1f} ms")
    for mock in mocks:
        mock.chunks, mock.chunk_delay = 3, 0.0


def full_backlog() -> tuple[socket.socket, list[socket.socket], int]:
    """A listening socket that accepts nothing and whose queue is full: connects hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    return server, fillers, port


def failover(gateway: GatewayProcess, n: int) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}

    def ask(model: str) -> Callable[[], list[float]]:
        return lambda: timed_posts(gateway.url, "/v1/chat/completions", {**body, "model": model}, n)

    healthy = p50(ask("healthy")())
    refused = p50(ask("after-refused")())
    hanging_body = {**body, "model": "after-hanging"}
    hanging = p50(timed_posts(gateway.url, "/v1/chat/completions", hanging_body, 5, warmup=1))
    print("\n3. failover to the second deployment (p50)")
    print(f"   healthy deployment only           {healthy:7.2f} ms")
    print(f"   first refuses connections         {refused:7.2f} ms  (+{refused - healthy:.2f} ms)")
    print(
        f"   first never accepts (timeout 0.5s) {hanging:6.1f} ms  "
        f"(+{hanging - healthy:.1f} ms; one connect timeout is 500 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--chunk-delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    server, fillers, hanging_port = full_backlog()
    with (
        ProviderMock("openai") as openai,
        ProviderMock("anthropic") as anthropic,
        ProviderMock("gemini") as gemini,
        tempfile.TemporaryDirectory() as tmp,
    ):
        providers = {
            "openai": {"base_url": openai.url},
            "anthropic": {"base_url": anthropic.url},
            "gemini": {"type": "gemini", "base_url": gemini.url},
            "refusing": {"type": "compatible", "base_url": f"http://127.0.0.1:{free_port()}"},
            "hanging": {"type": "compatible", "base_url": f"http://127.0.0.1:{hanging_port}"},
            "spare": {"type": "compatible", "base_url": openai.url},
        }
        spare = {"provider": "spare", "model": "gpt-4o", "weight": 0.0001}
        models = {
            "claude": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}],
            "flash": [{"provider": "gemini", "model": "gemini-2.5-flash"}],
            "healthy": [spare],
            "after-refused": [{"provider": "refusing", "model": "x", "weight": 10000}, spare],
            "after-hanging": [
                {"provider": "hanging", "model": "x", "weight": 10000, "timeout": 0.5},
                spare,
            ],
        }
        gateway = start_gateway(Path(tmp), providers, models)
        try:
            print("provider routing benchmark (shared 2-core machine: figures are noisy)")
            overhead(gateway, openai, anthropic, args.requests)
            gaps(gateway, [openai, anthropic, gemini], args.streams, args.chunk_delay_ms / 1000)
            failover(gateway, args.requests // 3)
        finally:
            gateway.stop()
    for sock in (server, *fillers):
        sock.close()


if __name__ == "__main__":
    main()
