"""Provider types through the real gateway: native formats, keys, headers, timeouts, archiving."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import openai
import pytest
import requests

from tests.gateway import GatewayProcess
from tests.polling import wait_for_count
from tests.provider_mocks import GEMINI_USAGE, ProviderMock, png_bytes
from tests.upstream import MockUpstream

GEMINI_KEY = "AIzaSy-client-own-gemini-key-0123456789"


@pytest.fixture
def mock() -> Iterator[ProviderMock]:
    with ProviderMock() as server:
        yield server


def with_config(
    start_gateway: Callable[..., GatewayProcess], tmp_path: Path, yaml: str, **env: str
) -> GatewayProcess:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml)
    return start_gateway({"GATEWAY_CONFIG": str(config), **env})


def rows(gateway: GatewayProcess, sql: str, *args: object) -> list[dict[str, object]]:
    with sqlite3.connect(gateway.env["DB_PATH"], timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def wait_records(gateway: GatewayProcess, expected: int, where: str = "1=1") -> list[dict]:
    def count() -> int:
        return len(rows(gateway, f"select id from requests where {where}"))

    assert wait_for_count(count, expected, timeout=30) >= expected
    return rows(gateway, f"select * from requests where {where} order by id")


def everything_stored(gateway: GatewayProcess) -> bytes:
    """The database and every file the gateway wrote, as one blob to search for secrets."""
    data = Path(gateway.env["DB_PATH"]).parent
    return b"".join(p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file())


# -- Anthropic -----------------------------------------------------------------------------


def test_anthropic_sdk_plain_and_streamed_records_usage(start_gateway):
    gateway = start_gateway()
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/anthropic", api_key="sk-ant-own-0123456789", max_retries=0
    )
    message = client.messages.create(
        model="claude-test-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hello from mock"
    with client.messages.stream(
        model="claude-test-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "".join(f"tok{i} " for i in range(5))
    plain, streamed = wait_records(gateway, 2, "provider = 'anthropic'")
    for record in (plain, streamed):
        assert record["model"] == "claude-test-model"
        assert (record["input_tokens"], record["output_tokens"]) == (14, 7)
        assert record["cached_tokens"] == 3
    assert streamed["stream"] == 1 and streamed["response_text"] == "".join(
        f"tok{i} " for i in range(5)
    )


# -- Gemini --------------------------------------------------------------------------------


def test_gemini_native_generate_and_sse_stream_with_the_key_redacted(start_gateway, mock, tmp_path):
    gateway = with_config(
        start_gateway, tmp_path, f"providers:\n  gemini: {{base_url: '{mock.url}'}}\n"
    )
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    plain = requests.post(
        f"{gateway.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={GEMINI_KEY}",
        json=body,
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["candidates"][0]["content"]["parts"][0]["text"] == "Hello from Gemini"
    assert mock.last("/v1beta/models/").query == f"key={GEMINI_KEY}"  # passed through as sent

    with requests.post(
        f"{gateway.url}/gemini/v1/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-goog-api-key": GEMINI_KEY},
        stream=True,
    ) as streamed:
        assert streamed.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in streamed.iter_lines() if line.startswith(b"data: ")]
    assert len(events) == 3
    assert mock.last("/v1/models/").headers["x-goog-api-key"] == GEMINI_KEY

    first, second = wait_records(gateway, 2, "provider = 'gemini'")
    assert first["model"] == "gemini-2.5-flash" and second["model"] == "gemini-2.5-pro"
    for record in (first, second):
        assert record["input_tokens"] == GEMINI_USAGE["promptTokenCount"]
        assert record["output_tokens"] == 4 + 2  # candidates + thinking
        assert record["reasoning_tokens"] == 2
        assert record["response_text"] == "Hello from Gemini"
    assert second["stream"] == 1
    assert "key=%5BREDACTED%5D" in first["query"] or "key=[REDACTED]" in first["query"]
    assert GEMINI_KEY.encode() not in everything_stored(gateway)


# -- Azure ---------------------------------------------------------------------------------


def test_azure_deployment_paths_with_api_version_and_injected_key(start_gateway, mock, tmp_path):
    yaml = (
        "providers:\n"
        f"  azure: {{base_url: '{mock.url}', api_key: azure-provider-key-123,"
        " api_version: '2024-10-21'}\n"
    )
    gateway = with_config(start_gateway, tmp_path, yaml, GATEWAY_API_KEYS="sk-gw-team1")
    client = openai.AzureOpenAI(
        azure_endpoint=f"{gateway.url}/azure",
        api_key="sk-gw-team1",
        api_version="2025-01-01-preview",
        max_retries=0,
    )
    completion = client.chat.completions.create(
        model="my-gpt4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello from my-gpt4o"
    seen = mock.last("/openai/deployments/my-gpt4o/")
    assert seen.query == "api-version=2025-01-01-preview"  # the client's own version wins
    assert seen.headers["api-key"] == "azure-provider-key-123"
    assert "sk-gw-team1" not in str(seen.headers)

    response = requests.post(
        f"{gateway.url}/azure/openai/deployments/other/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"api-key": "sk-gw-team1"},
    )
    assert response.status_code == 200, response.text
    assert mock.last("/openai/deployments/other/").query == "api-version=2024-10-21"
    sdk, plain = wait_records(gateway, 2, "provider = 'azure'")
    assert sdk["model"] == "my-gpt4o"  # the SDK names the deployment in the body
    assert plain["model"] == "gpt-4o-2024-08-06"  # otherwise the model that answered
    assert sdk["input_tokens"] == plain["input_tokens"] == 12


# -- Replicate -----------------------------------------------------------------------------


def test_replicate_prediction_outputs_are_archived_only_from_archive_hosts(
    start_gateway, mock, tmp_path
):
    yaml = f"providers:\n  replicate: {{base_url: '{mock.url}', archive_hosts: ['127.0.0.1']}}\n"
    gateway = with_config(start_gateway, tmp_path, yaml)
    elsewhere = mock.url.replace("127.0.0.1", "localhost") + "/delivery/elsewhere.png"
    response = requests.post(
        f"{gateway.url}/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "a cat"}, "outputs": 2, "extra_outputs": [elsewhere]},
        headers={"Authorization": "Token r8_client_own_token_0123", "Prefer": "wait"},
    )
    assert response.status_code == 201, response.text
    assert mock.last("/v1/models/").headers["authorization"] == "Token r8_client_own_token_0123"
    (record,) = wait_records(gateway, 1, "provider = 'replicate'")
    assert record["model"] == "black-forest-labs/flux-schnell"

    def archived() -> list[dict[str, object]]:
        return [
            f
            for f in rows(gateway, "select * from files")
            if record["id"] in (f.get("record_id"), f.get("request_id")) and f["kind"] == "output"
        ]

    assert wait_for_count(lambda: len(archived()), 2, timeout=30) == 2
    files_root = Path(gateway.env["FILE_STORAGE_PATH"])
    stored = {Path(str(f["path"])).name: f for f in archived()}
    for index in range(2):
        (name,) = [n for n in stored if n.endswith(f"-output{index}.png")]
        expected = png_bytes(int(hashlib.sha256(f"out-{index}.png".encode()).hexdigest()[:2], 16))
        assert (files_root / str(stored[name]["path"])).read_bytes() == expected
        assert stored[name]["content_type"] == "image/png"
    assert not [s for s in mock.requests if s.path.endswith("elsewhere.png")]


# -- gateway keys ------------------------------------------------------------------------------

PROVIDER_KEYS = (
    "providers:\n"
    "  openai: {api_key: sk-provider-openai-123}\n"
    "  anthropic: {api_key: [sk-ant-provider-a, sk-ant-provider-b]}\n"
    "  gemini: {base_url: '${GEMINI_URL}', api_key: gemini-provider-key-123}\n"
    "  local: {type: compatible, base_url: '${OPENAI_UPSTREAM_URL}'}\n"
    "models:\n"
    "  smart: [{provider: anthropic, model: claude-test-model}]\n"
)


def test_gateway_keys_are_required_and_replaced_by_the_provider_keys(
    start_gateway, upstream: MockUpstream, mock, tmp_path
):
    gateway = with_config(
        start_gateway,
        tmp_path,
        PROVIDER_KEYS,
        GATEWAY_API_KEYS="sk-gw-team1, sk-gw-team2",
        GEMINI_URL=mock.url,
    )
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    upstream.clear()
    missing = requests.post(f"{gateway.url}/v1/chat/completions", json=chat)
    wrong = requests.post(
        f"{gateway.url}/v1/chat/completions", json=chat, headers={"Authorization": "Bearer nope"}
    )
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    keyless_anthropic = requests.post(f"{gateway.url}/anthropic/v1/messages", json={})
    assert keyless_anthropic.status_code == 401
    assert keyless_anthropic.json()["type"] == "error"
    assert keyless_anthropic.json()["error"]["type"] == "authentication_error"
    keyless_gemini = requests.post(
        f"{gateway.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=nope", json={}
    )
    assert keyless_gemini.status_code == 401
    assert keyless_gemini.json()["error"]["status"] == "UNAUTHENTICATED"
    assert not upstream.requests and not mock.requests  # nothing refused reached a provider

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-gw-team2", max_retries=0)
    client.chat.completions.create(**chat)
    seen = upstream.wait_for(lambda r: r.path == "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-provider-openai-123"

    ant = anthropic.Anthropic(
        base_url=f"{gateway.url}/anthropic", api_key="sk-gw-team1", max_retries=0
    )
    for _ in range(2):
        ant.messages.create(
            model="claude-test-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    used = [r.headers["x-api-key"] for r in upstream.requests if r.path == "/v1/messages"]
    assert sorted(used) == ["sk-ant-provider-a", "sk-ant-provider-b"]  # round-robin

    ok = requests.post(
        f"{gateway.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=sk-gw-team1",
        json={"contents": []},
    )
    assert ok.status_code == 200
    assert mock.last("/v1beta/").query == ""  # the gateway key left the URL
    assert mock.last("/v1beta/").headers["x-goog-api-key"] == "gemini-provider-key-123"
    # An alias answered by Anthropic, called with the OpenAI SDK and only a gateway key.
    reply = client.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello from mock"
    routed = [r for r in upstream.requests if r.path == "/v1/messages"][-1]
    assert routed.headers["x-api-key"].startswith("sk-ant-provider-")
    for seen in [*upstream.requests, *mock.requests]:
        assert "sk-gw-team" not in str(seen.headers)

    records = wait_records(gateway, 8)
    columns = {c["name"] for c in rows(gateway, "pragma table_info(requests)")}
    if "gateway_key" in columns:
        accepted = [r["gateway_key"] for r in records if r["status"] in (200, 201)]
        assert hashlib.sha256(b"sk-gw-team2").hexdigest()[:8] in accepted
    stored = everything_stored(gateway)
    for secret in (b"sk-gw-team1", b"sk-gw-team2", b"sk-provider-openai-123", b"sk-ant-provider"):
        assert secret not in stored


def test_without_gateway_keys_provider_keys_are_never_injected(
    start_gateway, upstream: MockUpstream, mock, tmp_path
):
    gateway = with_config(start_gateway, tmp_path, PROVIDER_KEYS, GEMINI_URL=mock.url)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    upstream.clear()
    keyless = requests.post(f"{gateway.url}/v1/chat/completions", json=chat)
    assert keyless.status_code == 401
    assert "needs an API key" in keyless.json()["error"]["message"]
    assert not upstream.requests

    own = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json=chat,
        headers={"Authorization": "Bearer sk-client-own-key-1"},
    )
    assert own.status_code == 200
    seen = upstream.wait_for(lambda r: r.path == "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-client-own-key-1"

    local = requests.post(f"{gateway.url}/local/v1/chat/completions", json=chat)
    assert local.status_code == 200  # a provider the gateway holds no key for: as before
    assert "authorization" not in upstream.requests[-1].headers


# -- per-provider headers, timeouts and options ---------------------------------------------


def test_static_headers_and_per_path_read_timeouts(start_gateway, upstream, tmp_path):
    yaml = (
        "providers:\n"
        "  local:\n"
        "    type: compatible\n"
        "    base_url: ${OPENAI_UPSTREAM_URL}\n"
        "    headers: {x-team: blue, anthropic-version: '2099-01-01'}\n"
        "    read_timeout: 60\n"
        '    paths: {"/v1/echo/slow*": {read_timeout: 0.5}}\n'
    )
    gateway = with_config(start_gateway, tmp_path, yaml)
    upstream.clear()
    fast = requests.get(f"{gateway.url}/local/v1/echo/fast", headers={"x-mock-delay-ms": "1000"})
    assert fast.status_code == 200
    assert fast.json()["headers"]["x-team"] == "blue"
    slow = requests.get(f"{gateway.url}/local/v1/echo/slow", headers={"x-mock-delay-ms": "5000"})
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "upstream_timeout"


def test_unknown_provider_key_stops_the_start_naming_it(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("providers:\n  anthropic: {api_kee: x}\n")
    process = GatewayProcess(tmp_path / "bad", {"GATEWAY_CONFIG": str(config)})
    with pytest.raises(RuntimeError, match=r"providers\.anthropic: unknown key 'api_kee'"):
        process.start()


def test_azure_without_base_url_stops_the_start(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("providers:\n  azure: {api_key: x, api_version: '2024-10-21'}\n")
    process = GatewayProcess(tmp_path / "bad", {"GATEWAY_CONFIG": str(config)})
    with pytest.raises(RuntimeError, match=r"providers\.azure\.base_url"):
        process.start()
