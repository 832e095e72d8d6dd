"""Cost of the provider layer on the request path: key admission, credential rewrite, target.

Runs in-process (no sockets): `python bench/provider_keys.py`. Prints microseconds per
request for a pass-through (no gateway keys) and for a gateway-key request whose key is
replaced by the provider's, on OpenAI- and Gemini-typed providers. Figures are from a
shared, noisy machine: compare them with each other, not across runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simple_gateway.keys import GatewayKeys, KeyGate
from simple_gateway.providers import Provider, build_provider, register_builtin_types
from simple_gateway.settings import ProviderConfig

ROUNDS = 7
CALLS = 20_000
HEADERS = {
    "Authorization": "Bearer sk-gw-team1",
    "Content-Type": "application/json",
    "Content-Length": "120",
    "User-Agent": "OpenAI/Python 2.0",
    "Accept": "application/json",
}


def per_call_us(gate: KeyGate, provider: Provider, path: str) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            upstream = gate.admit(provider, path, HEADERS).apply(dict(HEADERS))
            provider.target(upstream.path)
        samples.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(samples)


def main() -> None:
    register_builtin_types()
    openai = build_provider(
        ProviderConfig("openai", "openai", "https://api.openai.com", {"api_key": ["a", "b"]})
    )
    gemini = build_provider(
        ProviderConfig("gemini", "gemini", "https://generativelanguage.googleapis.com", {})
    )
    open_gate = KeyGate(None)
    keyed_gate = KeyGate(GatewayKeys.parse("sk-gw-team1"))
    gemini_path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    rows = [
        ("openai, no gateway keys (pass-through)", open_gate, openai, "/v1/chat/completions"),
        ("openai, gateway key replaced", keyed_gate, openai, "/v1/chat/completions"),
        ("gemini, gateway key replaced", keyed_gate, gemini, gemini_path),
    ]
    print(f"median of {ROUNDS} rounds x {CALLS} calls, microseconds per request")
    for label, gate, provider, path in rows:
        print(f"  {label:<42} {per_call_us(gate, provider, path):6.2f} us")


if __name__ == "__main__":
    main()
