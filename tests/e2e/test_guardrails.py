"""Guardrails end to end: the real gateway, the mock upstream, a webhook server, real SDKs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway import GatewayProcess
from tests.polling import wait_for_count
from tests.upstream import MockUpstream
from tests.webhook import WebhookServer

# The example of the guardrails documentation, as written (the webhook's URL aside).
EXAMPLE = """
guardrails:
  timeout: 5s                       # default for each guardrail
  input:
    - {name: no-secrets, type: secrets, action: block, priority: 0}
    - {name: pii, type: pii, action: redact, entities: [email, phone, credit_card], priority: 0}
    - {name: policy, type: webhook, url: "WEBHOOK/check", timeout: 2s, on_error: allow, priority: 1}
    - {name: moderation, type: openai_moderation, api_key: "${OPENAI_API_KEY}", categories: [hate, violence], priority: 1, on_error: allow}
  output:
    - {name: banned-words, type: keywords, words: [confidential], action: block, priority: 0}
    - {name: no-boilerplate, type: regex, pattern: "(?i)as an ai language model", action: replace, replacement: "I can help with that."}
"""  # noqa: E501
MODERATION_KEY = "sk-test-moderation-key-0123456789"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def gateway_with(
    start_gateway: Callable[..., GatewayProcess], tmp_path: Path, webhook: WebhookServer
) -> Callable[..., GatewayProcess]:
    """Start a gateway with a guardrails YAML (WEBHOOK stands for the webhook's URL)."""
    webhook.reset()

    def start(config: str, env: dict[str, str] | None = None, name: str = "gw") -> GatewayProcess:
        path = tmp_path / f"{name}.yaml"
        path.write_text(config.replace("WEBHOOK", webhook.url))
        return start_gateway(
            {"GATEWAY_CONFIG": str(path), "OPENAI_API_KEY": MODERATION_KEY, **(env or {})},
            name=name,
        )

    return start


def openai_client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-client-key", max_retries=0)


def anthropic_client(gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{gateway.url}/anthropic", api_key="sk-ant-client", max_retries=0
    )


def chat(client: openai.OpenAI, text: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **extra
    )


def query(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, args))


def db_of(gateway: GatewayProcess) -> Path:
    return Path(gateway.env["DB_PATH"])


def wait_records(gateway: GatewayProcess, n: int) -> list[sqlite3.Row]:
    db = db_of(gateway)

    def count() -> int:
        return int(query(db, "select count(*) from requests")[0][0]) if db.exists() else -1

    assert wait_for_count(count, n, timeout=30) >= n
    return query(db, "select * from requests order by id")


def runs_of(gateway: GatewayProcess, record_id: str) -> dict[str, sqlite3.Row]:
    rows = query(db_of(gateway), "select * from guardrail_runs where record_id = ?", record_id)
    return {r["guardrail"]: r for r in rows}


def posts_to(upstream: MockUpstream, path: str) -> list[Any]:
    return [r for r in upstream.requests if r.path == path]


# -- the documented example -----------------------------------------------------------


def test_the_documented_example_works_with_the_official_sdks(
    gateway_with: Callable[..., GatewayProcess], upstream: MockUpstream, webhook: WebhookServer
) -> None:
    gateway = gateway_with(EXAMPLE)
    client = openai_client(gateway)
    upstream.clear()

    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, f"my key is {SECRET}")
    assert refused.value.status_code == 400
    assert refused.value.body["type"] == "guardrail_blocked"  # type: ignore[index]
    assert refused.value.body["code"] == "content_policy_violation"  # type: ignore[index]
    assert refused.value.body["guardrail"] == "no-secrets"  # type: ignore[index]
    assert refused.value.response.headers["x-guardrail-blocked"] == "no-secrets"
    assert posts_to(upstream, "/v1/chat/completions") == []

    reply = chat(client, "write to bob@example.com or call +44 20 7946 0958")
    assert reply.choices[0].message.content == "Hello from mock"
    sent = upstream.wait_for(lambda r: r.path == "/v1/chat/completions").json()
    assert sent["messages"][0]["content"] == "write to <EMAIL> or call <PHONE>"
    moderated = upstream.wait_for(lambda r: r.path == "/v1/moderations")
    assert moderated.json()["input"] == "write to <EMAIL> or call <PHONE>"
    assert moderated.headers["authorization"] == f"Bearer {MODERATION_KEY}"
    assert webhook.wait_calls(1)[0].payload["text"] == "write to <EMAIL> or call <PHONE>"

    with pytest.raises(openai.BadRequestError) as flagged:
        chat(client, "a hateful message")
    assert flagged.value.body["guardrail"] == "moderation"  # type: ignore[index]

    rows = wait_records(gateway, 3)
    blocked, redacted, moderation = rows
    assert (blocked["outcome"], blocked["blocked_by"], blocked["status"]) == (
        "blocked", "no-secrets", 400,
    )  # fmt: skip
    assert SECRET not in json.dumps([dict(r) for r in rows])
    assert "bob@example.com" not in json.dumps(dict(redacted))
    assert "<EMAIL>" in redacted["request_body"]
    verdicts = {name: r["verdict"] for name, r in runs_of(gateway, redacted["id"]).items()}
    assert verdicts == {
        "no-secrets": "pass", "pii": "redact", "policy": "pass", "moderation": "pass",
        "banned-words": "pass", "no-boilerplate": "pass",
    }  # fmt: skip
    all_runs = query(db_of(gateway), "select * from guardrail_runs")
    assert "bob@example.com" not in json.dumps([dict(r) for r in all_runs])
    assert MODERATION_KEY not in json.dumps([dict(r) for r in all_runs])
    assert runs_of(gateway, moderation["id"])["moderation"]["verdict"] == "block"
    assert moderation["blocked_by"] == "moderation"
    assert MODERATION_KEY not in gateway.logs()
