"""Model routing: configuration, weighted choice, cooldowns, the attempt loop, the front door."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from simple_gateway import errors
from simple_gateway.preflight import preflight
from simple_gateway.providers import Route, build_provider, register_builtin_types
from simple_gateway.proxy.upstream import Target
from simple_gateway.records.model import AttemptRow
from simple_gateway.routing.attempts import AttemptLoop, Prepared, attempt_sequence
from simple_gateway.routing.choice import Cooldowns, attempt_order, weighted_order
from simple_gateway.routing.config import Deployment, RoutingDefaults, duration, parse_models
from simple_gateway.routing.frontdoor import FrontDoor, RoutedCall
from simple_gateway.settings import ProviderConfig, SettingsError, load_settings
from simple_gateway.translate.formats import register_builtin_formats

register_builtin_formats()

PROVIDERS = {
    "openai": ProviderConfig("openai", "openai", "http://o:1"),
    "anthropic": ProviderConfig("anthropic", "anthropic", "http://a:1"),
    "gemini": ProviderConfig("gemini", "gemini", "http://g:1"),
    "ollama": ProviderConfig("ollama", "compatible", "http://l:1"),
}


def deployment(name: str, weight: float = 1.0, fallback: bool = False) -> Deployment:
    return Deployment("openai", name, "openai", weight=weight, fallback=fallback)


# Configuration


def test_the_issue_example_parses() -> None:
    config = parse_models(
        {
            "smart": [
                {"provider": "openai", "model": "gpt-4o", "weight": 3},
                {"provider": "anthropic", "model": "claude-sonnet-4-5", "weight": 1},
            ],
            "fast": [
                {"provider": "ollama", "model": "llama3.2"},
                {"provider": "openai", "model": "gpt-4o-mini", "fallback": True},
            ],
        },
        {"retries": 2, "cooldown": "30s"},
        PROVIDERS,
    )
    assert [d.name for d in config.aliases["smart"]] == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
    ]
    assert config.aliases["smart"][0].weight == 3
    assert config.aliases["fast"][1].fallback
    assert config.aliases["fast"][0].max_tokens == 4096
    assert config.routing.retries == 2 and config.routing.cooldown == 30


@pytest.mark.parametrize(
    ("models", "routing", "message"),
    [
        (
            {"x": [{"provider": "nope", "model": "m"}]},
            None,
            "models.x[0].provider: no provider named 'nope'",
        ),
        ({"x": [{"provider": "openai"}]}, None, "models.x[0].model: expected"),
        ({"x": [{"provider": "openai", "model": "m", "weight": 0}]}, None, "models.x[0].weight"),
        (
            {"x": [{"provider": "openai", "model": "m", "wieght": 2}]},
            None,
            "models.x[0].wieght: unknown",
        ),
        (
            {"x": [{"provider": "openai", "model": "m", "timeout": "soon"}]},
            None,
            "models.x[0].timeout",
        ),
        (
            {"x": [{"provider": "openai", "model": "m", "max_tokens": -1}]},
            None,
            "models.x[0].max_tokens",
        ),
        (
            {"x": [{"provider": "openai", "model": "m", "fallback": True}]},
            None,
            "models.x: every deployment",
        ),
        ({"x": []}, None, "models.x: expected a list"),
        (["x"], None, "models: expected a mapping"),
        ({}, {"retries": -1}, "routing.retries"),
        ({}, {"cooldown": "a while"}, "routing.cooldown"),
        ({}, {"retry": 1}, "routing.retry: unknown setting"),
    ],
)
def test_bad_entries_are_named(models: Any, routing: Any, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_models(models, routing, PROVIDERS)


def test_preflight_refuses_a_bad_alias(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("models:\n  smart:\n    - {provider: openai, model: gpt-4o, weight: -3}\n")
    with pytest.raises(SettingsError, match=r"models.smart\[0\].weight"):
        preflight(load_settings({}, config_path=str(config), dotenv_path=None))


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("1.5m", 90), (12, 12), ("2h", 7200)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert duration(text, "x") == seconds


# Weighted choice and cooldowns


@pytest.mark.parametrize("draws", [1_000, 100_000])
def test_weights_are_honoured(draws: int) -> None:
    rng = random.Random(8)
    a, b, c = deployment("a", 3), deployment("b", 1), deployment("c", 6)
    firsts = Counter(weighted_order([a, b, c], rng)[0].model for _ in range(draws))
    tolerance = 0.04 if draws == 1_000 else 0.005  # > 3 standard deviations
    assert abs(firsts["a"] / draws - 0.3) < tolerance
    assert abs(firsts["b"] / draws - 0.1) < tolerance
    assert abs(firsts["c"] / draws - 0.6) < tolerance


def test_order_puts_fallbacks_after_primaries_and_cooling_last() -> None:
    now = [0.0]
    cooldowns = Cooldowns(clock=lambda: now[0])
    p1, p2, fb = deployment("p1"), deployment("p2"), deployment("fb", fallback=True)
    rng = random.Random(1)
    for _ in range(50):
        order = attempt_order([fb, p1, p2], cooldowns, rng)
        assert order[2] is fb
    assert cooldowns.cool(p1, 10)
    assert not cooldowns.cool(p1, 10)  # already cooling: counted once
    assert [d.model for d in attempt_order([fb, p1, p2], cooldowns, rng)] == ["p2", "fb", "p1"]
    now[0] = 10.5
    assert not cooldowns.cooling(p1)
    assert attempt_order([fb, p1, p2], cooldowns, rng)[2] is fb


def test_attempt_sequence_goes_round_again_for_retries() -> None:
    a, b = deployment("a"), deployment("b")
    assert attempt_sequence([a, b], 3) == [a, b, a, b, a]
    assert attempt_sequence([a], 2) == [a, a, a]
    assert attempt_sequence([a, b], 0) == [a, b]


# The attempt loop


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self._headers = headers or {}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)

    def read(self, n: int) -> bytes:
        return b"busy"


class FakeConn:
    closed = False

    def close(self) -> None:
        self.closed = True


def run_loop(
    sequence: list[Deployment], outcomes: dict[str, list[Any]], defaults: RoutingDefaults
) -> tuple[Any, list[AttemptRow], list[float], list[str]]:
    sent: list[str] = []
    slept: list[float] = []
    rows: list[AttemptRow] = []

    def send(target: Target, method: str, headers: dict[str, str], body: Any, timeout: Any) -> Any:
        name = target.path
        sent.append(name)
        outcome = outcomes[name].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return FakeConn(), outcome

    def prepare(d: Deployment) -> Prepared:
        return Prepared(Target(("http", "x", 1), d.model), {}, b"{}")

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    loop = AttemptLoop(defaults, Cooldowns(), None, random.Random(3), lambda: False, sleep)
    try:
        result: Any = loop.run(sequence, prepare, send, rows.append)
    except errors.GatewayError as error:
        result = error
    return result, rows, slept, sent


def test_connect_failures_and_5xx_move_on_and_are_logged() -> None:
    a, b = deployment("a"), deployment("b")
    outcomes = {
        "a": [errors.UpstreamUnreachable("refused"), FakeResponse(200)],
        "b": [FakeResponse(502)],
    }
    result, rows, slept, sent = run_loop(
        attempt_sequence([a, b], 1), outcomes, RoutingDefaults(retries=1, backoff=0.01)
    )
    assert result[0] is a and result[2].status == 200
    assert sent == ["a", "b", "a"]  # failing over is immediate; going back to a waits
    assert 0 < sum(slept) < 0.5
    assert [(r.attempt, r.deployment, r.outcome, r.error_kind) for r in rows] == [
        (1, "openai/a", "retried", "upstream_unreachable"),
        (2, "openai/b", "retried", "upstream_status"),
        (3, "openai/a", "answered", None),
    ]


def test_a_read_timeout_is_never_repeated_on_the_same_deployment() -> None:
    a = deployment("a")
    outcomes = {
        "a": [errors.UpstreamTimeout("the provider did not answer within the read timeout")]
    }
    result, rows, _slept, sent = run_loop([a, a, a], outcomes, RoutingDefaults(retries=2))
    assert isinstance(result, errors.UpstreamTimeout)
    assert sent == ["a"] and len(rows) == 1 and rows[0].outcome == "retried"


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for() -> None:
    a = deployment("a")
    outcomes = {"a": [FakeResponse(429, {"Retry-After": "0.2"}), FakeResponse(200)]}
    result, _rows, slept, sent = run_loop([a, a], outcomes, RoutingDefaults(backoff=0.01))
    assert result[2].status == 200 and sent == ["a", "a"]
    assert sum(slept) >= 0.15  # waited for the provider's Retry-After, not just the backoff
    outcomes = {"a": [FakeResponse(429, {"Retry-After": "3600"}), FakeResponse(200)]}
    result, _rows, slept, sent = run_loop([a, a, a], outcomes, RoutingDefaults(retries=2))
    assert isinstance(result, errors.GatewayError) and sent == ["a"] and not slept


def test_the_last_attempt_passes_the_providers_answer_on() -> None:
    a = deployment("a")
    outcomes = {"a": [FakeResponse(500), FakeResponse(503)]}
    result, rows, _slept, _sent = run_loop([a, a], outcomes, RoutingDefaults(backoff=0.001))
    assert result[2].status == 503
    assert [r.outcome for r in rows] == ["retried", "answered"]


# The front door


def real_providers() -> dict[str, Any]:
    register_builtin_types()
    return {name: build_provider(config) for name, config in PROVIDERS.items()}


def door(models: Any = None) -> FrontDoor:
    providers = real_providers()
    config = parse_models(models, None, PROVIDERS)
    return FrontDoor(config, providers, PROVIDERS, providers["openai"])  # type: ignore[arg-type]


def test_plain_requests_are_not_taken_over() -> None:
    route = Route(real_providers()["openai"], "/v1/chat/completions")
    front = door()
    plain = b'{"model": "gpt-4o", "messages": []}'
    assert front.plan("/v1/chat/completions", route, "POST", plain) == (None, plain)
    unknown = b'{"model": "meta-llama/Llama-3", "messages": []}'
    assert front.plan("/v1/chat/completions", route, "POST", unknown) == (None, unknown)
    broken = b'{"model": "anthropic/claude", "messages": ['  # the provider explains it
    assert front.plan("/v1/chat/completions", route, "POST", broken)[0] is None
    named = b'{"model": "anthropic/claude-x", "messages": []}'
    assert front.plan("/v1/responses", route, "POST", named)[0] is None
    routed, _ = front.plan("/v1/chat/completions", route, "POST", named)
    assert isinstance(routed, RoutedCall)
    assert [d.name for d in routed.deployments] == ["anthropic/claude-x"]


def test_aliases_and_streamed_bodies_are_taken_over() -> None:
    route = Route(real_providers()["openai"], "/v1/chat/completions")
    front = door({"smart": [{"provider": "gemini", "model": "gemini-2.5-flash"}]})
    body = b'{"model": "smart", "messages": []}'
    routed, data = front.plan("/v1/chat/completions", route, "POST", iter([body[:10], body[10:]]))
    assert isinstance(routed, RoutedCall) and data == body
    assert routed.deployments[0].provider_type == "gemini"
    plain = b'{"model": "gpt-4o", "messages": []}'
    routed, data = front.plan("/v1/chat/completions", route, "POST", iter([plain]))
    assert routed is None and b"".join(data) == plain  # type: ignore[arg-type]


# Attempts rows travel with their request row, through the spool too


def test_attempt_rows_are_written_with_their_request_through_the_spool(tmp_path: Path) -> None:
    from simple_gateway.records.spool import Spool
    from simple_gateway.records.writer import _rows_of
    from simple_gateway.store.sqlite import SqliteStore
    from tests.unit.store import make_record

    record = make_record(1)
    record.alias, record.deployment = "smart", "openai/gpt-4o"
    for number, outcome in ((1, "retried"), (2, "answered")):
        record.attempts.append(
            AttemptRow(
                f"A{number}", number, "openai/gpt-4o", "openai", "gpt-4o",
                "2026-11-18T00:00:00.000+00:00", 3.5, 200, outcome,
            )
        )  # fmt: skip
    requests, related = _rows_of([record])
    spool = Spool(tmp_path / "spool")
    spool.append(requests, related)
    store = SqliteStore(str(tmp_path / "g.db"))
    store.migrate()
    assert spool.replay(store.write_batch) == 1
    store.write_batch(requests, related)  # a replayed batch again: nothing duplicated
    spool.close()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        row = conn.execute("select alias, deployment, attempts from requests").fetchone()
        attempts = conn.execute("select record_id, attempt, outcome from attempts").fetchall()
    assert row == ("smart", "openai/gpt-4o", 2)
    assert sorted(attempts) == [(record.id, 1, "retried"), (record.id, 2, "answered")]
    store.purge_keep_newest(0)  # retention takes the attempts with their request
    store.close()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        assert conn.execute("select count(*) from attempts").fetchone() == (0,)


class GatewayHeldKeys:
    """As with gateway keys on: each provider gets the gateway's key for it, or none."""

    def key_for(self, provider: str, client_key: str | None) -> str | None:
        return {"anthropic": "sk-ant-held", "openai": "sk-oai-held"}.get(provider)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("anthropic/claude-x", {"x-api-key": "sk-ant-held"}),
        ("openai/gpt-4o", {"Authorization": "Bearer sk-oai-held"}),
        ("ollama/llama3.2", {}),  # keyless: no credential at all, never the client's
    ],
)
def test_a_routed_call_carries_only_its_deployments_key(
    model: str, expected: dict[str, str]
) -> None:
    providers = real_providers()
    front = FrontDoor(
        parse_models(None, None, PROVIDERS),
        providers,  # type: ignore[arg-type]
        PROVIDERS,
        providers["openai"],  # type: ignore[arg-type]
        keys=GatewayHeldKeys(),
    )
    route = Route(providers["openai"], "/v1/chat/completions")
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    routed, _ = front.plan("/v1/chat/completions", route, "POST", body.encode())
    assert isinstance(routed, RoutedCall)
    outgoing = {"Authorization": "Bearer sk-gw-team1", "api-key": "x", "User-Agent": "t"}
    prepared = routed._prepare(routed.deployments[0], outgoing)
    credentials = {
        k: v
        for k, v in prepared.headers.items()
        if k.lower() in ("authorization", "x-api-key", "api-key", "x-goog-api-key")
    }
    assert credentials == expected
    assert prepared.headers["User-Agent"] == "t"


def test_without_gateway_keys_a_keyless_request_never_spends_a_held_key() -> None:
    register_builtin_types()
    held = {
        **PROVIDERS,
        "anthropic": ProviderConfig("anthropic", "anthropic", "http://a:1", {"api_key": "sk-held"}),
    }
    providers = {name: build_provider(config) for name, config in held.items()}
    front = FrontDoor(parse_models(None, None, held), providers, held, providers["openai"])
    route = Route(providers["openai"], "/v1/chat/completions")
    body = b'{"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]}'
    routed, _ = front.plan("/v1/chat/completions", route, "POST", body)
    assert isinstance(routed, RoutedCall)
    with pytest.raises(errors.InvalidApiKey, match="needs an API key"):
        routed._prepare(routed.deployments[0], {"User-Agent": "t"})
    prepared = routed._prepare(routed.deployments[0], {"Authorization": "Bearer sk-own-key"})
    assert prepared.headers["x-api-key"] == "sk-own-key"
