"""The proxy contract, driven through the real gateway with requests and the official SDKs."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest
import requests

from tests.gateway import GatewayProcess, free_port
from tests.upstream import MockUpstream, binary_sha256

KEY = "sk-test-proxy-0123456789"


def openai_client(gateway: GatewayProcess, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, **kwargs)


def last(upstream: MockUpstream, path: str):  # type: ignore[no-untyped-def]
    return upstream.wait_for(lambda r: r.path == path)


# -- the official SDKs work unchanged ------------------------------------------------------


def test_chat_completion_through_openai_sdk(gateway, upstream):
    upstream.clear()
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from mock"
    assert completion.usage.prompt_tokens == 11
    assert len(raw.headers["x-request-id"]) == 26
    seen = last(upstream, "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.json()["model"] == "gpt-4o-mini"


def test_streaming_chat_through_openai_sdk(gateway):
    stream = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-chunks": "8"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f"tok{i} " for i in range(8))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_responses_api_streaming_through_openai_sdk(gateway):
    events = list(openai_client(gateway).responses.create(model="gpt-4.1", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text


def test_embeddings_through_openai_sdk(gateway):
    result = openai_client(gateway).embeddings.create(
        model="text-embedding-3-small", input=["a", "b", "c"]
    )
    assert len(result.data) == 3 and len(result.data[0].embedding) == 8


def test_audio_transcription_upload_streams_to_upstream(gateway, upstream):
    audio = os.urandom(5 * 1024 * 1024)
    result = openai_client(gateway).audio.transcriptions.create(
        model="whisper-1", file=("speech.mp3", audio, "audio/mpeg")
    )
    assert result.model_extra["received_sha256"] == hashlib.sha256(audio).hexdigest()
    assert result.model_extra["received_bytes"] == len(audio)


def test_anthropic_messages_through_anthropic_sdk(gateway, upstream):
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/anthropic", api_key="sk-ant-test-0123456789", max_retries=0
    )
    message = client.messages.create(
        model="claude-test-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hello from mock"
    seen = last(upstream, "/v1/messages")
    credential = seen.headers.get("x-api-key") or seen.headers.get("authorization", "")
    assert credential.endswith("sk-ant-test-0123456789")
    assert "anthropic-version" in seen.headers

    with client.messages.stream(
        model="claude-test-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(f"tok{i} " for i in range(5))
    assert final.usage.output_tokens == 7


# -- verbatim transport ----------------------------------------------------------------------


def test_binary_download_is_byte_identical(gateway):
    size = 20 * 1024 * 1024
    with requests.get(f"{gateway.url}/v1/binary/{size}", stream=True, timeout=30) as response:
        digest = hashlib.sha256()
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(size)
    assert digest.hexdigest() == binary_sha256(size)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods_paths_and_query_strings_are_preserved(gateway, upstream, method):
    upstream.clear()
    url = f"{gateway.url}/openai/v1/echo/a/b%2Fc/d?x=1&y=%20two&x=3"
    response = requests.request(method, url, data=b"payload" if method != "GET" else None)
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == method
    assert echoed["query"] == "x=1&y=%20two&x=3"
    seen = upstream.wait_for(lambda r: r.path.startswith("/v1/echo/a"))
    assert seen.method == method
    assert seen.query == "x=1&y=%20two&x=3"


def test_headers_hop_by_hop_removed_credentials_passed(gateway, upstream):
    upstream.clear()
    response = requests.post(
        f"{gateway.url}/v1/echo",
        data=b"{}",
        headers={
            "Authorization": "Bearer sk-pass-through-123456",
            "x-api-key": "xk-123456789",
            "api-key": "azure-123456789",
            "anthropic-version": "2023-06-01",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic abc",
            "X-Custom": "kept",
        },
    )
    seen = upstream.wait_for(lambda r: r.path == "/v1/echo")
    headers = seen.headers
    assert headers["authorization"] == "Bearer sk-pass-through-123456"
    assert headers["x-api-key"] == "xk-123456789"
    assert headers["api-key"] == "azure-123456789"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-custom"] == "kept"
    for dropped in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert dropped not in headers
    assert headers["host"] == upstream.url.removeprefix("http://")
    assert "keep-alive" not in {k.lower() for k in response.headers}


def test_compressed_bodies_pass_through_unchanged(gateway):
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"x-mock-gzip": "1", "Accept-Encoding": "gzip"},
        stream=True,
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw))["object"] == "chat.completion"


def test_request_id_echoes_a_valid_client_id_and_replaces_an_invalid_one(gateway):
    ok = requests.get(f"{gateway.url}/v1/models", headers={"x-request-id": "client-id-42"})
    assert ok.headers["x-request-id"] == "client-id-42"
    bad = requests.get(f"{gateway.url}/v1/models", headers={"x-request-id": "bad id\twith space"})
    assert bad.headers["x-request-id"] != "bad id\twith space"
    assert len(bad.headers["x-request-id"]) == 26
    first = requests.get(f"{gateway.url}/v1/models").headers["x-request-id"]
    second = requests.get(f"{gateway.url}/v1/models").headers["x-request-id"]
    assert first < second  # sortable by creation time


def test_streams_are_not_batched(gateway, upstream):
    """The client holds the first event while the upstream is still producing the rest."""
    tag = "not-batched"
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [], "stream": True},
        headers={"x-mock-chunks": "10", "x-mock-chunk-delay-ms": "200", "x-mock-tag": tag},
        stream=True,
    )
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = response.iter_lines()
    first = next(line for line in lines if line)
    assert first.startswith(b"data: ")
    assert not upstream.tag(tag).finished.is_set()  # the upstream is still sending
    rest = [line for line in lines if line]
    assert rest[-1] == b"data: [DONE]"
    assert upstream.tag(tag).finished.wait(5)


# -- failures ----------------------------------------------------------------------------------


def error_of(response: requests.Response) -> dict:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    return body["error"]


def test_upstream_error_status_passes_through_untouched(gateway):
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"x-mock-status": "429", "x-mock-error-body": '{"error": "slow down"}'},
    )
    assert response.status_code == 429
    assert response.content == b'{"error": "slow down"}'


def test_unknown_provider_is_404_json(gateway):
    response = requests.post(f"{gateway.url}/nope/v1/chat/completions", json={})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "unknown_route"
    assert "/openai/" in error["message"]


def test_unreachable_upstream_is_502(start_gateway):
    gateway = start_gateway({"OPENAI_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}"})
    response = requests.post(f"{gateway.url}/v1/chat/completions", json={"model": "x"})
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "upstream_unreachable"
    assert "could not connect to the provider" in error["message"]
    assert response.headers["x-request-id"]


def test_upstream_timeouts_are_504_and_a_stalled_stream_is_cut(start_gateway):
    gateway = start_gateway({"UPSTREAM_READ_TIMEOUT": "0.5"})
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "x", "messages": []},
        headers={"x-mock-delay-ms": "3000"},
    )
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"

    stalled = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "x", "messages": [], "stream": True},
        headers={"x-mock-stall-after": "2"},
        stream=True,
    )
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(stalled.iter_content(None))


def test_request_body_over_the_limit_is_413_before_any_upstream_call(start_gateway, upstream):
    gateway = start_gateway({"MAX_REQUEST_BODY_MB": "1"})
    upstream.clear()
    response = requests.post(f"{gateway.url}/v1/echo", data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit applies while streaming
        for _ in range(40):
            yield b"y" * 65536

    response = requests.post(f"{gateway.url}/v1/echo", data=chunked())
    assert response.status_code == 413
    assert not [r for r in upstream.requests if r.path == "/v1/echo" and r.body_size > 1024 * 1024]


def test_loop_through_the_gateway_itself_is_508(upstream, tmp_path):
    process = GatewayProcess(tmp_path / "loop")
    process.env["OPENAI_UPSTREAM_URL"] = process.url
    with process:
        response = requests.post(f"{process.url}/v1/chat/completions", json={"model": "x"})
    assert response.status_code == 508
    assert error_of(response)["code"] == "loop_detected"


def test_stream_cut_by_upstream_is_not_finished(gateway):
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "x", "messages": [], "stream": True},
        headers={"x-mock-cut-after": "2", "x-mock-chunks": "10"},
        stream=True,
    )
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(None):
            received += chunk
    assert b"data: " in received
    assert b"[DONE]" not in received


def test_client_disconnect_closes_the_upstream_promptly(gateway, upstream):
    tag = "client-leaves"
    body = json.dumps({"model": "x", "messages": [], "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"x-mock-chunks: 100\r\nx-mock-chunk-delay-ms: 2000\r\nx-mock-tag: "
            + tag.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        received = b""
        while b"data: " not in received:
            received += client.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
    events = upstream.tag(tag)
    assert events.disconnected.wait(1.5), "upstream connection still open"
    assert not events.finished.is_set()


def test_client_disconnect_before_headers_closes_the_upstream(gateway, upstream):
    tag = "client-leaves-early"
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "x", "messages": []},
            headers={"x-mock-delay-ms": "20000", "x-mock-tag": tag},
            timeout=0.5,
        )
    assert upstream.tag(tag).disconnected.wait(2), "upstream connection still open"


def test_sigterm_lets_in_flight_streams_complete(start_gateway):
    gateway = start_gateway({"GRACEFUL_TIMEOUT": "15"})
    started = threading.Barrier(6)

    def stream() -> bytes:
        response = requests.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "x", "messages": [], "stream": True},
            headers={"x-mock-chunks": "15", "x-mock-chunk-delay-ms": "100"},
            stream=True,
            timeout=30,
        )
        parts = response.iter_content(None)
        body = next(parts)
        started.wait(10)
        return body + b"".join(parts)

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(stream) for _ in range(5)]
        started.wait(10)
        gateway.signal(signal.SIGTERM)
        bodies = [f.result(30) for f in futures]
    assert all(body.rstrip().endswith(b"data: [DONE]") for body in bodies)
    assert gateway.process is not None and gateway.process.wait(20) == 0


# -- operations -----------------------------------------------------------------------------


def test_health_and_status(gateway, upstream):
    assert requests.get(f"{gateway.url}/health").json() == {"status": "ok"}
    status = gateway.status()
    assert status["providers"]["openai"]["base_url"] == upstream.url
    assert status["providers"]["anthropic"]["prefix"] == "/anthropic"
    assert status["version"]
    assert "DATABASE_URL" in status["settings"]
    assert status["settings"]["STATUS_TOKEN"].startswith("[REDACTED] sha256:")
    assert status["providers"]["openai"]["type"] == "openai"  # the YAML type, not a class name
    totals = status["records"]["totals"]
    assert totals and all(type(count) is int for count in totals.values()), totals


def test_anonymous_status_is_a_health_summary_and_a_wrong_token_is_refused(gateway):
    anonymous = requests.get(f"{gateway.url}/status")
    assert anonymous.status_code == 200
    assert set(anonymous.json()) == {"status", "version", "uptime_seconds"}
    for authorization in ("Bearer wrong-token", "Basic dGVzdDp0ZXN0", "Bearer "):
        refused = requests.get(f"{gateway.url}/status", headers={"Authorization": authorization})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert "providers" not in refused.text


def test_without_a_status_token_nobody_sees_the_full_status(start_gateway):
    gateway = start_gateway({"STATUS_TOKEN": ""})
    anonymous = requests.get(f"{gateway.url}/status").json()
    assert set(anonymous) == {"status", "version", "uptime_seconds"}
    guessed = requests.get(f"{gateway.url}/status", headers={"Authorization": "Bearer "})
    assert guessed.status_code == 401


def test_metrics_token_protects_metrics(start_gateway):
    gateway = start_gateway({"METRICS_TOKEN": "metrics-secret"})
    assert requests.get(f"{gateway.url}/metrics").status_code == 401
    wrong = requests.get(f"{gateway.url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    allowed = requests.get(
        f"{gateway.url}/metrics", headers={"Authorization": "Bearer metrics-secret"}
    )
    assert allowed.status_code == 200 and "gateway_records_written_total" in allowed.text


def test_gunicorn_wsgi_entry_point_serves_the_same_app(start_gateway):
    gateway = start_gateway(entry="gunicorn")
    completion = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello from mock"
    assert requests.get(f"{gateway.url}/health").json() == {"status": "ok"}


def test_yaml_declared_provider_is_routed_by_its_prefix(start_gateway, upstream, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("providers:\n  ollama:\n    base_url: ${MOCK_URL}\n")
    gateway = start_gateway({"GATEWAY_CONFIG": str(config), "MOCK_URL": upstream.url})
    upstream.clear()
    response = requests.post(
        f"{gateway.url}/ollama/v1/chat/completions", json={"model": "llama3", "messages": []}
    )
    assert response.json()["model"] == "llama3"
    assert upstream.wait_for(lambda r: r.path == "/v1/chat/completions").json()["model"] == "llama3"
    ollama = gateway.status()["providers"]["ollama"]
    assert (ollama["prefix"], ollama["type"]) == ("/ollama", "compatible")


def test_bad_configuration_stops_start_up_with_a_clear_message(tmp_path):
    process = GatewayProcess(tmp_path / "bad", {"PORT": "not-a-port"})
    with pytest.raises(RuntimeError, match="PORT: invalid literal"):
        process.start()


def test_metrics_count_requests_and_records(gateway):
    requests.get(f"{gateway.url}/v1/models")
    text = requests.get(f"{gateway.url}/metrics").text
    assert (
        'gateway_requests_total{outcome="completed",provider="openai",status_class="2xx"}' in text
    )
    assert "gateway_records_written_total" in text
