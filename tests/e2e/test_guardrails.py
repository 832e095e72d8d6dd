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
import requests

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


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def openai_client(gateway: GatewayProcess) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-client-key", max_retries=0)
    _CLIENTS.append(client)
    return client


def anthropic_client(gateway: GatewayProcess) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/anthropic", api_key="sk-ant-client", max_retries=0
    )
    _CLIENTS.append(client)
    return client


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


# -- priority groups: parallel within, sequential across, first failure stops ----------

SLOW_PAIR_ONE_GROUP = """
guardrails:
  input:
    - {name: slow-a, type: webhook, url: "WEBHOOK/check?delay_ms=300", priority: 0}
    - {name: slow-b, type: webhook, url: "WEBHOOK/check?delay_ms=300", priority: 0}
"""
SLOW_PAIR_TWO_GROUPS = SLOW_PAIR_ONE_GROUP.replace("priority: 0}\n", "priority: 1}\n", 1)


def _intervals(gateway: GatewayProcess, record_id: str) -> dict[str, tuple[float, float]]:
    from datetime import datetime

    runs = runs_of(gateway, record_id)
    spans = {}
    for name, run in runs.items():
        start = datetime.fromisoformat(run["started_at"]).timestamp() * 1000
        spans[name] = (start, start + run["duration_ms"])
    return spans


def test_one_group_runs_its_webhooks_at_once_two_groups_one_after_the_other(
    gateway_with: Callable[..., GatewayProcess], webhook: WebhookServer
) -> None:
    together = gateway_with(SLOW_PAIR_ONE_GROUP, name="together")
    assert chat(openai_client(together), "hi").choices[0].message.content == "Hello from mock"
    assert webhook.max_in_flight == 2  # both checks were waiting at the same time
    (row,) = wait_records(together, 1)
    a, b = _intervals(together, row["id"]).values()
    assert a[0] < b[1] and b[0] < a[1]  # the two runs overlap
    assert row["duration_ms"] < sum(r["duration_ms"] for r in runs_of(together, row["id"]).values())

    webhook.reset()
    apart = gateway_with(SLOW_PAIR_TWO_GROUPS, name="apart")
    assert chat(openai_client(apart), "hi").choices[0].message.content == "Hello from mock"
    assert webhook.max_in_flight == 1
    (row,) = wait_records(apart, 1)
    spans = _intervals(apart, row["id"])
    assert spans["slow-b"][1] <= spans["slow-a"][0] + 1  # priority 0 ran first, then 1
    assert row["duration_ms"] >= sum(r["duration_ms"] for r in runs_of(apart, row["id"]).values())


FAST_FAILURE = """
guardrails:
  input:
    - {name: slow, type: webhook, url: "WEBHOOK/check?delay_ms=3000", priority: 0}
    - {name: fast-block, type: webhook, url: "WEBHOOK/check?verdict=block&reason=nope", priority: 0}
    - {name: never, type: keywords, words: [anything], priority: 1}
"""


def test_a_fast_failure_answers_before_a_slow_sibling_finishes(
    gateway_with: Callable[..., GatewayProcess], webhook: WebhookServer, upstream: MockUpstream
) -> None:
    gateway = gateway_with(FAST_FAILURE)
    upstream.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        chat(openai_client(gateway), "hello")
    slow = next(c for c in webhook.wait_calls(2) if "delay_ms=3000" in c.path)
    assert not slow.finished.is_set()  # the refusal did not wait for it
    assert refused.value.body["guardrail"] == "fast-block"  # type: ignore[index]
    assert "nope" in refused.value.body["message"]  # type: ignore[index]
    (row,) = wait_records(gateway, 1)
    runs = runs_of(gateway, row["id"])
    assert runs["fast-block"]["verdict"] == "block"
    assert runs["slow"]["verdict"] == "cancelled"
    assert "never" not in runs  # the next group never ran
    assert posts_to(upstream, "/v1/chat/completions") == []


TIMEOUTS = """
guardrails:
  input:
    - {name: late, type: webhook, url: "WEBHOOK/check?delay_ms=2000", timeout: 200ms, on_error: ON_ERROR}
"""  # noqa: E501


@pytest.mark.parametrize("on_error", ["allow", "block"])
def test_a_timeout_follows_on_error(
    gateway_with: Callable[..., GatewayProcess], on_error: str
) -> None:
    gateway = gateway_with(TIMEOUTS.replace("ON_ERROR", on_error))
    client = openai_client(gateway)
    if on_error == "allow":
        assert chat(client, "hi").choices[0].message.content == "Hello from mock"
    else:
        with pytest.raises(openai.InternalServerError) as failed:
            chat(client, "hi")
        assert failed.value.status_code == 503
        assert failed.value.body["code"] == "guardrail_unavailable"  # type: ignore[index]
        assert failed.value.response.headers["x-guardrail-blocked"] == "late"
    (row,) = wait_records(gateway, 1)
    run = runs_of(gateway, row["id"])["late"]
    assert run["verdict"] == "timeout"
    assert "no verdict within 0.2s" in run["error"]
    if on_error == "block":
        assert (row["outcome"], row["error_kind"]) == ("gateway_error", "guardrail_unavailable")


def test_a_crashing_webhook_under_on_error_allow_lets_the_request_through(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    config = """
guardrails:
  input:
    - {name: broken, type: webhook, url: "WEBHOOK/check?status=500", on_error: allow}
"""
    gateway = gateway_with(config)
    assert chat(openai_client(gateway), "hi").choices[0].message.content == "Hello from mock"
    (row,) = wait_records(gateway, 1)
    run = runs_of(gateway, row["id"])["broken"]
    assert run["verdict"] == "error" and "answered 500" in run["error"]


# -- input refusals on every route ------------------------------------------------------

BLOCK_WORD = """
guardrails:
  input:
    - {name: no-forbidden, type: keywords, words: [forbidden], action: block}
"""


def test_input_blocks_on_chat_responses_anthropic_and_embeddings(
    gateway_with: Callable[..., GatewayProcess], upstream: MockUpstream
) -> None:
    gateway = gateway_with(BLOCK_WORD)
    client = openai_client(gateway)
    upstream.clear()
    refusals: list[Any] = []
    with pytest.raises(openai.BadRequestError) as chat_refusal:
        chat(client, "the Forbidden word")
    refusals.append(chat_refusal.value)
    with pytest.raises(openai.BadRequestError) as responses_refusal:
        client.responses.create(model="gpt-4o-mini", input="forbidden", instructions="x")
    refusals.append(responses_refusal.value)
    with pytest.raises(openai.BadRequestError) as embeddings_refusal:
        client.embeddings.create(model="text-embedding-3-small", input=["ok", "forbidden"])
    refusals.append(embeddings_refusal.value)
    for refusal in refusals:
        assert refusal.body["type"] == "guardrail_blocked"
        assert refusal.body["guardrail"] == "no-forbidden"
        assert refusal.response.headers["x-guardrail-blocked"] == "no-forbidden"
    with pytest.raises(anthropic.BadRequestError) as anthropic_refusal:
        anthropic_client(gateway).messages.create(
            model="claude-x",
            max_tokens=10,
            system="be nice",
            messages=[{"role": "user", "content": [{"type": "text", "text": "forbidden"}]}],
        )
    assert anthropic_refusal.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "The request was blocked by the guardrail 'no-forbidden': "
            "a listed word matched",
        },
    }
    assert upstream.requests == []  # no upstream call for any of them
    assert chat(client, "forbiddenness is fine").choices[0].message.content == "Hello from mock"
    rows = wait_records(gateway, 5)
    assert [r["outcome"] for r in rows] == ["blocked"] * 4 + ["completed"]
    assert {r["blocked_by"] for r in rows[:4]} == {"no-forbidden"}


def test_respond_completion_answers_a_block_with_a_refusal_reply(
    gateway_with: Callable[..., GatewayProcess], upstream: MockUpstream
) -> None:
    config = """
guardrails:
  input:
    - {name: polite, type: keywords, words: [forbidden], respond: completion, message: "I cannot help with that."}
"""  # noqa: E501
    gateway = gateway_with(config)
    client = openai_client(gateway)
    upstream.clear()
    reply = chat(client, "forbidden")
    assert reply.choices[0].message.content == "I cannot help with that."
    streamed = chat(client, "forbidden", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "I cannot help with that."
    response = client.responses.create(model="gpt-4o-mini", input="forbidden")
    assert response.output_text == "I cannot help with that."
    events = client.responses.create(model="gpt-4o-mini", input="forbidden", stream=True)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "I cannot help with that."
    message = anthropic_client(gateway).messages.create(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "forbidden"}]
    )
    assert message.content[0].text == "I cannot help with that."  # type: ignore[union-attr]
    with anthropic_client(gateway).messages.stream(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "forbidden"}]
    ) as stream:
        assert stream.get_final_text() == "I cannot help with that."
    assert upstream.requests == []


# -- redaction, output block and replace, monitor mode -----------------------------------

REDACT = """
guardrails:
  input:
    - {name: pii, type: pii, action: redact, priority: 0}
    - {name: secrets, type: secrets, action: redact, priority: 0}
    - {name: echo, type: webhook, url: "WEBHOOK/check", priority: 1}
"""
CARD = "4111 1111 1111 1111"


def test_redaction_reaches_the_upstream_and_no_original_is_stored(
    gateway_with: Callable[..., GatewayProcess], upstream: MockUpstream, webhook: WebhookServer
) -> None:
    gateway = gateway_with(REDACT)
    upstream.clear()
    text = f"card {CARD}, mail ann@example.org, key {SECRET}"
    client = openai_client(gateway)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "mail ann@example.org"},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
    )
    sent = upstream.wait_for(lambda r: r.path == "/v1/chat/completions")
    body = sent.json()
    assert body["messages"][0]["content"] == "mail <EMAIL>"
    assert body["messages"][1]["content"][0]["text"] == (
        "card <CREDIT_CARD>, mail <EMAIL>, key <SECRET>"
    )
    assert int(sent.headers["content-length"]) == sent.body_size
    assert webhook.wait_calls(1)[0].payload["texts"] == [
        "mail <EMAIL>",
        "card <CREDIT_CARD>, mail <EMAIL>, key <SECRET>",
    ]  # fmt: skip  -- the next group saw the redacted text
    (row,) = wait_records(gateway, 1)
    stored = json.dumps(dict(row)) + json.dumps(
        [dict(r) for r in query(db_of(gateway), "select * from guardrail_runs")]
    )
    for original in (CARD, "ann@example.org", SECRET):
        assert original not in stored
    runs = runs_of(gateway, row["id"])
    assert (runs["pii"]["verdict"], runs["secrets"]["verdict"]) == ("redact", "redact")


OUTPUT = """
guardrails:
  output:
    - {name: no-mock, type: keywords, words: [MOCKWORD], action: ACTION, replacement: "Replaced."}
"""


def test_an_output_block_refuses_a_plain_reply_and_keeps_the_providers_in_the_record(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    gateway = gateway_with(OUTPUT.replace("MOCKWORD", "mock").replace("ACTION", "block"))
    client = openai_client(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, "hi")
    assert refused.value.body["guardrail"] == "no-mock"  # type: ignore[index]
    assert refused.value.response.headers["x-guardrail-blocked"] == "no-mock"
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client(gateway).messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    first, _second = wait_records(gateway, 2)
    assert (first["outcome"], first["blocked_by"], first["status"]) == ("blocked", "no-mock", 400)
    run = runs_of(gateway, first["id"])["no-mock"]
    assert run["verdict"] == "block" and run["original_text"] == "Hello from mock"
    assert len(query(db_of(gateway), "select * from guardrail_runs")) == 2  # one run each


def test_an_output_replace_rewrites_the_reply_in_its_own_shape(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    gateway = gateway_with(OUTPUT.replace("MOCKWORD", "mock").replace("ACTION", "replace"))
    reply = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-mock-gzip": "1", "Accept-Encoding": "gzip"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert "Content-Encoding" not in reply.headers
    assert int(reply.headers["Content-Length"]) == len(reply.content)
    assert reply.json()["choices"][0]["message"]["content"] == "Replaced."
    assert reply.json()["usage"]["total_tokens"] == 18  # the rest of the provider's reply
    client = openai_client(gateway)
    assert client.responses.create(model="m", input="hi").output_text == "Replaced."
    message = anthropic_client(gateway).messages.create(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Replaced."  # type: ignore[union-attr]
    row = wait_records(gateway, 3)[0]
    run = runs_of(gateway, row["id"])["no-mock"]
    assert (run["original_text"], run["override_text"]) == ("Hello from mock", "Replaced.")


def test_monitor_mode_changes_nothing_but_records(
    gateway_with: Callable[..., GatewayProcess], upstream: MockUpstream
) -> None:
    config = """
guardrails:
  input:
    - {name: watch-pii, type: pii, action: redact, mode: monitor}
  output:
    - {name: watch-words, type: keywords, words: [mock], mode: monitor}
"""
    gateway = gateway_with(config)
    upstream.clear()
    reply = chat(openai_client(gateway), "mail ann@example.org")
    assert reply.choices[0].message.content == "Hello from mock"
    sent = upstream.wait_for(lambda r: r.path == "/v1/chat/completions").json()
    assert sent["messages"][0]["content"] == "mail ann@example.org"
    (row,) = wait_records(gateway, 1)
    assert (row["outcome"], row["blocked_by"]) == ("completed", None)
    runs = runs_of(gateway, row["id"])
    assert (runs["watch-pii"]["verdict"], runs["watch-pii"]["enforced"]) == ("redact", 0)
    assert (runs["watch-words"]["verdict"], runs["watch-words"]["enforced"]) == ("block", 0)


# -- streams -----------------------------------------------------------------------------

STREAM_CUT = """
guardrails:
  stream_check_chars: 10
  output:
    - {name: no-tok3, type: keywords, words: [tok3]}
"""
SLOW_STREAM = {"x-mock-chunks": "40", "x-mock-chunk-delay-ms": "30"}


def test_a_streamed_reply_is_cut_with_an_error_event_the_openai_sdk_raises(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    gateway = gateway_with(STREAM_CUT)
    client = openai_client(gateway)
    received: list[str] = []
    stream = chat(client, "hi", stream=True, extra_headers=SLOW_STREAM)
    with pytest.raises(openai.APIError) as cut:
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "no-tok3" in str(cut.value)
    text = "".join(received)
    assert text.startswith("tok0 tok1 tok2 ")
    assert "tok39" not in text  # cut mid-way, not at the end
    with pytest.raises(openai.APIError):
        for _event in client.responses.create(
            model="m", input="hi", stream=True, extra_headers=SLOW_STREAM
        ):
            pass
    (row, responses_row) = wait_records(gateway, 2)
    assert (row["outcome"], row["blocked_by"], row["stream"]) == ("blocked", "no-tok3", 1)
    assert "[DONE]" not in row["response_body"]
    assert '"code":"content_policy_violation"' in row["response_body"]
    assert responses_row["outcome"] == "blocked"


def test_a_streamed_reply_is_cut_with_an_error_event_the_anthropic_sdk_raises(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    gateway = gateway_with(STREAM_CUT)
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as cut,
        anthropic_client(gateway).messages.stream(
            model="claude-x",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=SLOW_STREAM,
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert "no-tok3" in str(cut.value)
    assert "tok39" not in "".join(received)
    (row,) = wait_records(gateway, 1)
    assert "event: error" in row["response_body"] and "message_stop" not in row["response_body"]


def test_a_clean_stream_passes_whole_and_buffer_mode_replaces_it(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    config = """
guardrails:
  output:
    - {name: never, type: keywords, words: [absent]}
    - {name: tidy, type: regex, pattern: "tok1", action: redact, replacement: "TOK", stream: buffer}
"""
    gateway = gateway_with(config)
    stream = chat(openai_client(gateway), "hi", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "tok0 TOK tok2 tok3 tok4 "


# -- PostgreSQL ---------------------------------------------------------------------------


def test_verdict_rows_in_postgresql(gateway_with: Callable[..., GatewayProcess]) -> None:
    import psycopg2  # type: ignore[import-untyped]

    from tests.unit.store import fresh_postgres_database

    with fresh_postgres_database() as url:
        gateway = gateway_with(BLOCK_WORD, env={"DATABASE_URL": url})
        client = openai_client(gateway)
        with pytest.raises(openai.BadRequestError):
            chat(client, "forbidden")
        chat(client, "allowed")

        def count() -> int:
            conn = psycopg2.connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute("select count(*) from guardrail_runs")
                    return int(cur.fetchone()[0])
            finally:
                conn.close()

        assert wait_for_count(count, 2, timeout=30) == 2
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select r.outcome, r.blocked_by, g.verdict, g.enforced from requests r "
                    "join guardrail_runs g on g.record_id = r.id order by r.id"
                )
                rows = cur.fetchall()
                cur.execute("select guardrail, stage, runs, blocks from guardrail_summary")
                summary = cur.fetchall()
        finally:
            conn.close()
        gateway.stop()
    assert rows == [("blocked", "no-forbidden", "block", True), ("completed", None, "pass", True)]
    assert summary == [("no-forbidden", "input", 2, 1)]


def test_guardrail_metrics_are_served(gateway_with: Callable[..., GatewayProcess]) -> None:
    gateway = gateway_with(BLOCK_WORD)
    with pytest.raises(openai.BadRequestError):
        chat(openai_client(gateway), "forbidden")
    metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
    assert (
        'gateway_guardrail_runs_total{guardrail="no-forbidden",stage="input",verdict="block"} 1.0'
        in metrics
    )
    assert 'gateway_guardrail_duration_seconds_count{guardrail="no-forbidden"' in metrics


def test_a_body_over_max_body_is_refused_or_passed_unchecked_per_on_error(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    config = """
guardrails:
  max_body: 2KiB
  input:
    - {name: strict, type: secrets, on_error: ON_ERROR}
"""
    big = "word " * 1000
    strict = gateway_with(config.replace("ON_ERROR", "block"), name="strict")
    with pytest.raises(openai.APIStatusError) as refused:
        chat(openai_client(strict), big)
    assert refused.value.status_code == 413
    assert refused.value.response.headers["x-guardrail-blocked"] == "strict"
    lenient = gateway_with(config.replace("ON_ERROR", "allow"), name="lenient")
    assert chat(openai_client(lenient), big).choices[0].message.content == "Hello from mock"
    (row,) = wait_records(lenient, 1)
    run = runs_of(lenient, row["id"])["strict"]
    assert run["verdict"] == "error" and "max_body" in run["error"]


def test_a_bad_entry_stops_the_start_once_naming_it(
    gateway_with: Callable[..., GatewayProcess],
) -> None:
    config = """
guardrails:
  input:
    - {name: ok, type: secrets}
    - {name: broken, type: regex, pattern: "(unclosed"}
"""
    with pytest.raises(RuntimeError) as failed:
        gateway_with(config)
    message = str(failed.value)
    assert "guardrails.input[1] (broken): bad regex" in message
    assert message.count("bad regex") == 1  # said once, by the master, before any worker
    assert "Traceback" not in message
