"""Model aliases and provider/model names through the front door, driven by the OpenAI SDK.

The upstreams are mocks that speak Anthropic's Messages API and Gemini's generateContent
(tests.routing_mocks.py); the default provider is the shared OpenAI mock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
import yaml

from tests.gateway import GatewayProcess, free_port
from tests.polling import wait_for_count
from tests.routing_mocks import TOOL_ARGS, USAGE_CACHED, USAGE_IN, USAGE_OUT, ProviderMock
from tests.upstream import MockUpstream

KEY = "sk-routing-test-key-0001"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PNG_URI = "data:image/png;base64,iVBORw0KGgo="


def query(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, args))


def rows_when(db: Path, sql: str, expected: int, *args: object) -> list[sqlite3.Row]:
    """The rows of `sql` once there are at least `expected` (bounded poll)."""
    wait_for_count(lambda: len(query(db, sql, *args)) if db.exists() else -1, expected, 30.0)
    return query(db, sql, *args)


def start_routed(
    start_gateway: Callable[..., GatewayProcess],
    tmp_path: Path,
    providers: dict[str, Any],
    models: dict[str, Any],
    routing: dict[str, Any] | None = None,
    name: str = "gw",
    env: dict[str, str] | None = None,
) -> GatewayProcess:
    config = {"providers": providers, "models": models}
    if routing is not None:
        config["routing"] = routing
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return start_gateway({"GATEWAY_CONFIG": str(path), **(env or {})}, name=name)


_clients: dict[str, openai.OpenAI] = {}


def client_of(gateway: GatewayProcess) -> openai.OpenAI:
    """One SDK client per gateway, closed when the module ends (no socket left to the GC)."""
    client = _clients.get(gateway.url)
    if client is None:
        client = _clients[gateway.url] = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0
        )
    return client


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for client in _clients.values():
        client.close()
    _clients.clear()


def db_of(gateway: GatewayProcess) -> Path:
    return Path(gateway.env["DB_PATH"])


@pytest.fixture(scope="module")
def anthropic_mock() -> Iterator[ProviderMock]:
    with ProviderMock("anthropic") as mock:
        yield mock


@pytest.fixture(scope="module")
def gemini_mock() -> Iterator[ProviderMock]:
    with ProviderMock("gemini") as mock:
        yield mock


@pytest.fixture(scope="module")
def routed(
    upstream: MockUpstream,
    anthropic_mock: ProviderMock,
    gemini_mock: ProviderMock,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("routed")
    config = {
        "providers": {
            "anthropic": {"base_url": anthropic_mock.url},
            "gemini": {"type": "gemini", "base_url": gemini_mock.url},
        },
        "models": {
            "claude": [{"provider": "anthropic", "model": "claude-sonnet-4-5", "max_tokens": 1000}],
            "flash": [{"provider": "gemini", "model": "gemini-2.5-flash"}],
            "gem-embed": [{"provider": "gemini", "model": "text-embedding-004"}],
            "mini": [{"provider": "openai", "model": "gpt-4o-mini"}],
        },
    }
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"OPENAI_UPSTREAM_URL": upstream.url, "GATEWAY_CONFIG": str(path)}
    with GatewayProcess(workdir, env) as process:
        yield process


# Anthropic through the OpenAI SDK


def test_chat_through_an_anthropic_alias(routed, anthropic_mock):
    client = client_of(routed)
    raw = client.chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "again"},
        ],
        temperature=0.3,
        stop=["END"],
    )
    reply = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "anthropic/claude-sonnet-4-5"
    assert reply.choices[0].message.content == "Hello from anthropic"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == USAGE_IN
    assert reply.usage.completion_tokens == USAGE_OUT
    assert reply.usage.prompt_tokens_details.cached_tokens == USAGE_CACHED
    sent = anthropic_mock.received[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.body["model"] == "claude-sonnet-4-5"
    assert sent.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
    assert sent.body["max_tokens"] == 1000  # the deployment's, as the client gave none
    assert sent.body["temperature"] == 0.3
    assert sent.body["stop_sequences"] == ["END"]


def test_streamed_tool_call_through_anthropic(routed, anthropic_mock):
    client = client_of(routed)
    stream = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, arguments, names, finish, usage = "", "", [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert text == "Hello from anthropic"
    assert names == ["get_weather"]
    assert json.loads(arguments) == TOOL_ARGS
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == USAGE_OUT
    sent = anthropic_mock.received[-1].body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["max_tokens"] == 50 and sent["stream"] is True


def test_tool_results_and_images_reach_anthropic(routed, anthropic_mock):
    client = client_of(routed)
    reply = client.chat.completions.create(
        model="anthropic/claude-haiku-4-5",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": PNG_URI}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert reply.choices[0].message.content == "Hello from anthropic"
    sent = anthropic_mock.received[-1].body
    assert sent["model"] == "claude-haiku-4-5"
    images = [b for b in sent["messages"][0]["content"] if b["type"] == "image"]
    assert images[0]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    assert images[1]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
    ]


def test_a_non_streamed_tool_call_comes_back_as_tool_calls(routed):
    reply = client_of(routed).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == TOOL_ARGS


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
    ],
)
def test_unmappable_fields_get_a_400_naming_them(routed, anthropic_mock, extra, named):
    before = anthropic_mock.count()
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = requests.post(
        f"{routed.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert f"'{named}'" in error["message"]
    assert error["code"] == "unsupported_field"
    assert anthropic_mock.count() == before  # nothing was sent


def test_the_sdk_raises_a_bad_request_for_an_unmappable_field(routed):
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client_of(routed).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], logprobs=True
        )


def test_provider_errors_come_back_in_the_openai_shape(routed, anthropic_mock):
    anthropic_mock.statuses.append(400)
    with pytest.raises(openai.BadRequestError, match="anthropic 400"):
        client_of(routed).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )


# Gemini through the OpenAI SDK


def test_chat_through_a_gemini_alias(routed, gemini_mock):
    raw = client_of(routed).chat.completions.with_raw_response.create(
        model="flash",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": PNG_URI}},
                ],
            },
        ],
        max_tokens=64,
        stop="END",
    )
    reply = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "gemini/gemini-2.5-flash"
    assert reply.choices[0].message.content == "Hello from gemini"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == USAGE_IN
    assert reply.usage.prompt_tokens_details.cached_tokens == USAGE_CACHED
    sent = gemini_mock.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    }
    assert sent.body["generationConfig"] == {"maxOutputTokens": 64, "stopSequences": ["END"]}


def test_streamed_tool_call_through_gemini(routed, gemini_mock):
    stream = client_of(routed).chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    text, calls, finish = "", [], None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            calls += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert text == "Hello from gemini"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == TOOL_ARGS
    assert finish == "tool_calls"
    sent = gemini_mock.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == "alt=sse"
    declaration = sent.body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"] == WEATHER_TOOL["function"]["parameters"]


def test_tool_results_reach_gemini_as_function_responses(routed, gemini_mock):
    client_of(routed).chat.completions.create(
        model="flash",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    body = gemini_mock.received[-1].body
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


def test_embeddings_through_a_gemini_alias(routed, gemini_mock):
    result = client_of(routed).embeddings.create(model="gem-embed", input=["a", "b"])
    assert [item.embedding for item in result.data] == [[0.5, 0.0, -0.25], [0.5, 1.0, -0.25]]
    sent = gemini_mock.received[-1]
    assert sent.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent.body["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "b"}]},
    }


def test_embeddings_through_an_openai_alias_rewrite_the_model(routed, upstream):
    result = client_of(routed).embeddings.create(model="mini", input="x")
    assert result.model == "gpt-4o-mini"
    seen = upstream.wait_for(lambda r: r.path == "/v1/embeddings" and b"gpt-4o-mini" in r.body_head)
    assert seen.json()["model"] == "gpt-4o-mini"


def test_embeddings_for_an_anthropic_deployment_are_refused(routed):
    with pytest.raises(openai.BadRequestError, match="embeddings"):
        client_of(routed).embeddings.create(model="claude", input="x")


# The default provider and the model list


def test_plain_model_names_pass_through_byte_for_byte(routed, upstream):
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a/b"}],"x-extra":1}'
    response = requests.post(
        f"{routed.url}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "x-mock-tag": "plain-pass"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "x-gateway-deployment" not in response.headers
    seen = upstream.wait_for(lambda r: r.tag == "plain-pass")
    assert seen.body_head == body
    unknown = body.replace(b"gpt-4o-mini", b"meta-llama/Llama-3-8B")  # no such provider
    requests.post(
        f"{routed.url}/v1/chat/completions",
        data=unknown,
        headers={"Content-Type": "application/json", "x-mock-tag": "plain-slash"},
        timeout=10,
    )
    assert upstream.wait_for(lambda r: r.tag == "plain-slash").body_head == unknown


def test_models_list_adds_the_aliases_and_passes_the_query(routed, upstream):
    response = requests.get(
        f"{routed.url}/v1/models?limit=5", headers={"x-mock-tag": "models-list"}, timeout=10
    )
    assert response.status_code == 200
    ids = [m["id"] for m in response.json()["data"]]
    assert "gpt-4o" in ids  # the provider's own list
    assert {"claude", "flash", "gem-embed", "mini"} <= set(ids)
    assert upstream.wait_for(lambda r: r.tag == "models-list").query == "limit=5"
    listed = client_of(routed).models.list()
    assert "claude" in [m.id for m in listed.data]


def test_routed_exchanges_are_recorded_with_both_bodies_and_attempts(routed):
    client = client_of(routed)
    marker = "record-me-please"
    stream = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": marker}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    reply = client.chat.completions.create(
        model="flash", messages=[{"role": "user", "content": marker}]
    )
    assert reply.choices[0].message.content == "Hello from gemini"
    sql = "select * from requests where request_body like ? order by started_at"
    rows = rows_when(db_of(routed), sql, 2, f"%{marker}%")
    streamed, plain = rows[0], rows[1]
    for row in rows:
        assert json.loads(row["request_body"])["messages"][0]["content"] == marker
        assert row["attempts"] == 1
    assert streamed["alias"] == "claude"
    assert streamed["deployment"] == "anthropic/claude-sonnet-4-5"
    assert streamed["provider"] == "anthropic"
    assert streamed["model"] == "claude-sonnet-4-5"
    assert json.loads(streamed["upstream_request_body"])["max_tokens"] == 1000
    assert "chat.completion.chunk" in streamed["response_body"]
    assert plain["deployment"] == "gemini/gemini-2.5-flash"
    assert "contents" in json.loads(plain["upstream_request_body"])
    assert json.loads(plain["response_body"])["object"] == "chat.completion"
    for row in rows:
        assert (row["input_tokens"], row["output_tokens"]) == (USAGE_IN, USAGE_OUT)
        assert row["cached_tokens"] == USAGE_CACHED
    attempts = query(db_of(routed), "select * from attempts where record_id = ?", plain["id"])
    assert [(a["attempt"], a["deployment"], a["status"], a["outcome"]) for a in attempts] == [
        (1, "gemini/gemini-2.5-flash", 200, "answered")
    ]
    assert KEY not in json.dumps([dict(r) for r in rows])


# Resilience: weights, fallbacks, retries, cooldowns


@pytest.fixture
def pair() -> Iterator[tuple[ProviderMock, ProviderMock]]:
    with ProviderMock("first") as first, ProviderMock("second") as second:
        yield first, second


def _pair_providers(first: ProviderMock, second: ProviderMock) -> dict[str, Any]:
    return {
        "first": {"type": "compatible", "base_url": first.url},
        "second": {"type": "compatible", "base_url": second.url},
    }


def _ask(client: openai.OpenAI, model: str, **extra: Any) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra
    )
    return raw.headers["x-gateway-deployment"], raw.parse().choices[0].message.content


def test_weights_are_honoured(start_gateway, tmp_path, pair):
    first, second = pair
    models = {
        "split": [
            {"provider": "first", "model": "a", "weight": 3},
            {"provider": "second", "model": "b", "weight": 1},
        ]
    }
    gateway = start_routed(start_gateway, tmp_path, _pair_providers(first, second), models)
    client = client_of(gateway)
    total = 400
    for _ in range(total):
        _ask(client, "split")
    share = first.count() / total
    assert first.count() + second.count() == total
    assert 0.66 <= share <= 0.84, share  # 0.75 expected; the bounds are > 4 sigma wide


def test_a_failing_deployment_is_cooled_down_with_zero_client_errors(start_gateway, tmp_path, pair):
    first, second = pair
    first.statuses.extend([500] * 100)
    models = {"both": [{"provider": "first", "model": "a"}, {"provider": "second", "model": "b"}]}
    gateway = start_routed(
        start_gateway, tmp_path, _pair_providers(first, second), models, {"cooldown": "60s"}
    )
    client = client_of(gateway)
    answers = [_ask(client, "both") for _ in range(30)]
    assert {deployment for deployment, _ in answers} == {"second/b"}
    assert {text for _, text in answers} == {"Hello from second"}
    assert first.count() == 1  # once, then out of rotation for the cooldown
    metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'gateway_deployment_cooldowns_total{deployment="first/a"} 1.0' in metrics
    assert (
        'gateway_deployment_failures_total{deployment="first/a",error_kind="upstream_status"}'
        in metrics
    )
    failed = rows_when(db_of(gateway), "select * from attempts where deployment = 'first/a'", 1)
    assert failed[0]["status"] == 500 and failed[0]["outcome"] == "retried"
    request = query(db_of(gateway), "select * from requests where id = ?", failed[0]["record_id"])
    assert request[0]["attempts"] == 2 and request[0]["deployment"] == "second/b"
    assert request[0]["status"] == 200


def test_a_cooled_deployment_comes_back(start_gateway, tmp_path, pair):
    first, second = pair
    first.statuses.append(503)
    models = {
        "both": [
            {"provider": "first", "model": "a", "weight": 1000},
            {"provider": "second", "model": "b", "weight": 0.001},
        ]
    }
    gateway = start_routed(
        start_gateway, tmp_path, _pair_providers(first, second), models, {"cooldown": "1s"}
    )
    client = client_of(gateway)
    assert _ask(client, "both")[0] == "second/b"  # first failed and is cooling down
    back = wait_for_count(lambda: int(_ask(client, "both")[0] == "first/a"), 1, 30.0, 0.2)
    assert back == 1


def test_fallbacks_are_used_only_when_the_others_fail(start_gateway, tmp_path, pair):
    first, second = pair
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    providers = {**_pair_providers(first, second), "down": {"base_url": refused}}
    models = {
        "safe": [
            {"provider": "first", "model": "a"},
            {"provider": "second", "model": "b", "fallback": True},
        ],
        "rescued": [
            {"provider": "down", "model": "x"},
            {"provider": "second", "model": "b", "fallback": True},
        ],
    }
    gateway = start_routed(start_gateway, tmp_path, providers, models, {"retries": 0})
    client = client_of(gateway)
    assert {_ask(client, "safe")[0] for _ in range(10)} == {"first/a"}
    assert second.count() == 0
    assert {_ask(client, "rescued")[0] for _ in range(5)} == {"second/b"}
    rows = rows_when(db_of(gateway), "select * from attempts where deployment = 'down/x'", 1)
    assert rows[0]["error_kind"] == "upstream_unreachable"


def test_a_429_is_retried_after_retry_after(start_gateway, tmp_path, pair):
    first, second = pair
    first.statuses.append(429)
    first.retry_after = "0"
    models = {"solo": [{"provider": "first", "model": "a"}]}
    gateway = start_routed(
        start_gateway,
        tmp_path,
        _pair_providers(first, second),
        models,
        {"retries": 2, "backoff": "10ms"},
    )
    assert _ask(client_of(gateway), "solo") == ("first/a", "Hello from first")
    assert first.count() == 2


def test_the_last_failure_reaches_the_client_when_every_attempt_fails(
    start_gateway, tmp_path, pair
):
    first, second = pair
    first.statuses.extend([503] * 3)
    models = {"solo": [{"provider": "first", "model": "a"}]}
    gateway = start_routed(
        start_gateway,
        tmp_path,
        _pair_providers(first, second),
        models,
        {"retries": 2, "backoff": "10ms"},
    )
    with pytest.raises(openai.InternalServerError):
        _ask(client_of(gateway), "solo")
    assert first.count() == 3


def test_a_retry_never_duplicates_a_streamed_reply(start_gateway, tmp_path, pair):
    first, second = pair
    first.statuses.append(500)
    models = {
        "both": [
            {"provider": "first", "model": "a", "weight": 1000},
            {"provider": "second", "model": "b", "weight": 0.001},
        ]
    }
    gateway = start_routed(start_gateway, tmp_path, _pair_providers(first, second), models)
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "both", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert response.headers["x-gateway-deployment"] == "second/b"
    events = [line for line in response.text.split("\n\n") if line]
    assert events.count("data: [DONE]") == 1
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content", "")
        for e in events
        if e != "data: [DONE]"
    )
    assert text == "Hello from second"
    assert (first.count(), second.count()) == (1, 1)


def test_a_read_timeout_fails_over_but_never_repeats_on_the_same_deployment(
    start_gateway, tmp_path, pair
):
    first, second = pair
    first.delay = 3.0
    models = {
        "both": [
            {"provider": "first", "model": "a", "weight": 1000, "timeout": "0.3s"},
            {"provider": "second", "model": "b", "weight": 0.001},
        ],
        "slow": [{"provider": "first", "model": "a", "timeout": "0.3s"}],
    }
    gateway = start_routed(
        start_gateway,
        tmp_path,
        _pair_providers(first, second),
        models,
        {"retries": 2, "backoff": "10ms", "cooldown": "0s"},
    )
    client = client_of(gateway)
    assert _ask(client, "both")[0] == "second/b"
    assert first.count() == 1
    with pytest.raises(openai.APIStatusError) as raised:
        _ask(client, "slow")
    assert raised.value.status_code == 504
    assert first.count() == 2  # one attempt: the provider may still be working on it


def test_a_stream_cut_short_is_never_retried(start_gateway, tmp_path, pair):
    first, second = pair
    first.cut_after = 2
    models = {
        "both": [
            {"provider": "claude-mock", "model": "claude-x", "weight": 1000},
            {"provider": "second", "model": "b", "weight": 0.001},
        ]
    }
    claude = {"type": "anthropic", "base_url": first.url}
    providers = {**_pair_providers(first, second), "claude-mock": claude}
    gateway = start_routed(start_gateway, tmp_path, providers, models, {"retries": 2})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # noqa: SIM117
        with requests.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "both", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
            stream=True,
        ) as response:
            assert response.headers["x-gateway-deployment"] == "claude-mock/claude-x"
            received = bytearray()
            for chunk in response.iter_content(None):
                received += chunk
    assert b"chat.completion.chunk" in received and b"[DONE]" not in received
    assert (first.count(), second.count()) == (1, 0)
    rows = rows_when(
        db_of(gateway), "select * from requests where outcome = 'upstream_interrupted'", 1
    )
    assert rows[0]["attempts"] == 1 and "[DONE]" not in (rows[0]["response_body"] or "")


def test_gateway_keys_put_each_deployments_own_key_upstream(start_gateway, tmp_path, pair):
    first, second = pair
    providers = {
        "claude-mock": {"type": "anthropic", "base_url": first.url, "api_key": "sk-ant-held-1"},
        "azure-mock": {
            "type": "azure",
            "base_url": second.url,
            "api_key": "azure-held-key-1",
            "api_version": "2024-10-21",
        },
    }
    models = {
        "team": [{"provider": "claude-mock", "model": "claude-x"}],
        "az": [{"provider": "azure-mock", "model": "gpt4o-deployment"}],
    }
    gateway = start_routed(
        start_gateway, tmp_path, providers, models, env={"GATEWAY_API_KEYS": "sk-gw-team1"}
    )
    with pytest.raises(openai.AuthenticationError):
        _ask(client_of(gateway), "team")  # the test's own key is no gateway key
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-gw-team1", max_retries=0)
    try:
        assert _ask(client, "team") == ("claude-mock/claude-x", "Hello from first")
        assert _ask(client, "az") == ("azure-mock/gpt4o-deployment", "Hello from second")
    finally:
        client.close()
    sent = first.received[-1]
    assert sent.headers["x-api-key"] == "sk-ant-held-1"
    assert "Authorization" not in sent.headers
    azure = second.received[-1]
    assert azure.path == "/openai/deployments/gpt4o-deployment/chat/completions"
    assert azure.query == "api-version=2024-10-21"
    assert azure.headers["api-key"] == "azure-held-key-1"
    assert "Authorization" not in azure.headers
    rows = rows_when(db_of(gateway), "select * from requests where alias is not null", 2)
    stored = json.dumps([dict(r) for r in rows])
    assert "sk-ant-held-1" not in stored and "azure-held-key-1" not in stored
    assert "sk-gw-team1" not in stored


def test_a_routed_call_carries_only_its_own_providers_static_headers(start_gateway, tmp_path, pair):
    first, _ = pair
    providers = {
        "openai": {"headers": {"X-Default-Org": "org-of-the-default-provider"}},
        "claude-mock": {
            "type": "anthropic",
            "base_url": first.url,
            "headers": {"X-Claude-Team": "team-7"},
        },
    }
    gateway = start_routed(start_gateway, tmp_path, providers, {"team": [
        {"provider": "claude-mock", "model": "claude-x"}
    ]})  # fmt: skip
    assert _ask(client_of(gateway), "team") == ("claude-mock/claude-x", "Hello from first")
    sent = {name.lower(): value for name, value in first.received[-1].headers.items()}
    assert sent["x-claude-team"] == "team-7"
    assert "x-default-org" not in sent


ISSUE_YAML = """
providers:
  anthropic: {api_key: "${ANTHROPIC_API_KEY}"}
  gemini:    {api_key: "${GEMINI_API_KEY}"}
  azure:     {type: azure, base_url: "https://myres.openai.azure.com", api_key: "${AZURE_API_KEY}", api_version: "2024-10-21"}
  ollama:    {type: compatible, base_url: "http://127.0.0.1:11434"}
models:
  smart:                                   # a name clients use
    - {provider: openai, model: gpt-4o, weight: 3}
    - {provider: anthropic, model: claude-sonnet-4-5, weight: 1}
  fast:
    - {provider: ollama, model: llama3.2}
    - {provider: openai, model: gpt-4o-mini, fallback: true}   # used only when the others fail
routing: {retries: 2, cooldown: 30s}
"""  # noqa: E501 (the configuration as the documentation gives it)


def test_the_documented_configuration_works_with_only_a_gateway_key(start_gateway, tmp_path):
    with (
        ProviderMock("openai") as oa,
        ProviderMock("anthropic") as an,
        ProviderMock("gemini") as ge,
        ProviderMock("ollama") as ol,
    ):
        config = tmp_path / "gateway.yaml"
        config.write_text(ISSUE_YAML)
        env = {
            "GATEWAY_CONFIG": str(config),
            "GATEWAY_API_KEYS": "sk-gw-team1",
            "ANTHROPIC_API_KEY": "sk-ant-real-1",
            "GEMINI_API_KEY": "gem-real-key-1",
            "AZURE_API_KEY": "azure-real-key-1",
            "OPENAI_UPSTREAM_URL": oa.url,
            "ANTHROPIC_UPSTREAM_URL": an.url,
            "GEMINI_UPSTREAM_URL": ge.url,
            "OLLAMA_UPSTREAM_URL": ol.url,
        }
        gateway = start_gateway(env, name="issue")
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-gw-team1", max_retries=0)
        try:
            for _ in range(8):
                deployment, text = _ask(client, "smart")
                assert (deployment, text) in {
                    ("openai/gpt-4o", "Hello from openai"),
                    ("anthropic/claude-sonnet-4-5", "Hello from anthropic"),
                }
            assert _ask(client, "fast") == ("ollama/llama3.2", "Hello from ollama")
            for model in ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
                stream = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "weather?"}],
                    tools=[WEATHER_TOOL],
                    stream=True,
                )
                calls = [
                    call
                    for chunk in stream
                    for choice in chunk.choices
                    for call in choice.delta.tool_calls or []
                ]
                assert calls[0].function.name == "get_weather"
        finally:
            client.close()
        assert an.received[-1].headers["x-api-key"] == "sk-ant-real-1"
        assert ge.received[-1].headers["x-goog-api-key"] == "gem-real-key-1"
        assert "sk-gw-team1" not in json.dumps([r.headers for r in ol.received])
