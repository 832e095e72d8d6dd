"""The mock upstream speaks what the official SDKs expect and misbehaves on cue."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
import requests

from tests.upstream import MockUpstream, binary_payload, binary_sha256, embedding_vector

ROOT = Path(__file__).resolve().parents[2]
STREAMED_TEXT = "tok0 tok1 tok2 tok3 tok4 "


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    with MockUpstream() as upstream:
        yield upstream


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def oai(mock: MockUpstream) -> Iterator[openai.OpenAI]:
    """An OpenAI client that validates every answer against the SDK's models."""
    with openai.OpenAI(
        base_url=f"{mock.url}/v1",
        api_key="sk-test",
        max_retries=0,
        _strict_response_validation=True,
    ) as client:
        yield client


@pytest.fixture
def oai_lenient(mock: MockUpstream) -> Iterator[openai.OpenAI]:
    """Strict validation runs before the SDK decodes base64 embeddings, so some calls need this."""
    with openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(mock: MockUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=mock.url, api_key="sk-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def test_chat_completion(mock: MockUpstream, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-mock-tag": "chat-plain"},
    )

    assert completion.model == "gpt-test"
    assert completion.choices[0].message.content == "Hello from mock"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 18
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    seen = mock.wait_for(lambda r: r.tag == "chat-plain")
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.json()["messages"] == [{"role": "user", "content": "hi"}]
    assert seen.body_size == len(seen.body_head)
    assert seen.body_sha256 == hashlib.sha256(seen.body_head).hexdigest()
    assert mock.tag("chat-plain").finished.wait(2)


def test_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == STREAMED_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_chat_stream_wire_format(mock: MockUpstream, http: requests.Session) -> None:
    response = http.post(
        f"{mock.url}/v1/chat/completions",
        json={"model": "m", "stream": True},
        headers={"x-mock-chunks": "2"},
        stream=True,
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text.endswith("\n\n")
    events = response.text.split("\n\n")[:-1]
    assert len(events) == 1 + 2 + 1 + 1
    assert events[-1] == "data: [DONE]"
    assert all(event.startswith("data: {") for event in events[:-1])


def test_legacy_completion_stream(oai_lenient: openai.OpenAI) -> None:
    chunks = list(oai_lenient.completions.create(model="m", prompt="hi", stream=True))

    assert "".join(c.choices[0].text for c in chunks) == STREAMED_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (
        oai_lenient.completions.create(model="m", prompt="hi").choices[0].text == "Hello from mock"
    )


def test_responses_stream(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-test", input="hi", stream=True))

    assert [e.type for e in events[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == STREAMED_TEXT
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == STREAMED_TEXT
    assert completed.response.usage is not None
    assert completed.response.usage.input_tokens_details.cached_tokens == 3


def test_responses_helpers(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-test", input="hi") as stream:
        final = stream.get_final_response()
    plain = oai.responses.create(model="gpt-test", input="hi")

    assert final.output_text == STREAMED_TEXT
    assert plain.output_text == "Hello from mock"
    assert plain.usage is not None and plain.usage.output_tokens_details.reasoning_tokens == 2


def test_embeddings_base64_and_float(oai_lenient: openai.OpenAI) -> None:

    batch = oai_lenient.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    single = oai_lenient.embeddings.create(model="e", input="a", encoding_format="float")

    assert [d.embedding for d in batch.data] == [embedding_vector(i) for i in range(3)]
    assert single.data[0].embedding == embedding_vector(0)
    assert batch.usage.total_tokens == batch.usage.prompt_tokens > 0


def test_messages(mock: MockUpstream, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )

    assert message.content[0].type == "text" and message.content[0].text == "Hello from mock"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    assert message.usage.cache_read_input_tokens == 3
    assert "anthropic-version" in mock.requests[-1].headers


def test_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()

    assert "message_start" in events and events[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text == STREAMED_TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)


def test_transcription_upload(mock: MockUpstream, http: requests.Session) -> None:
    audio = os.urandom(5 * 1024 * 1024)

    response = http.post(
        f"{mock.url}/v1/audio/transcriptions",
        files={"file": ("speech.wav", audio, "audio/wav")},
        data={"model": "whisper-1"},
        headers={"x-mock-tag": "upload"},
    )

    assert response.status_code == 200
    assert response.json() == {
        "text": "transcribed",
        "received_bytes": len(audio),
        "received_sha256": hashlib.sha256(audio).hexdigest(),
    }
    seen = mock.wait_for(lambda r: r.tag == "upload")
    sent = response.request.body
    assert isinstance(sent, bytes)
    assert seen.body_size == len(sent) == int(seen.headers["content-length"])
    assert seen.body_sha256 == hashlib.sha256(sent).hexdigest()
    assert len(seen.body_head) == 64 * 1024


def test_transcription_through_sdk(oai_lenient: openai.OpenAI) -> None:
    result = oai_lenient.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", b"RIFF" * 1000)
    )
    assert result.text == "transcribed"


def test_binary_download(mock: MockUpstream, http: requests.Session) -> None:
    size = 20 * 1000 * 1000
    digest = hashlib.sha256()
    received = 0

    with http.get(f"{mock.url}/binary/{size}", stream=True) as response:
        assert response.headers["content-type"] == "application/octet-stream"
        assert int(response.headers["content-length"]) == size
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
            received += len(chunk)

    assert received == size
    assert digest.hexdigest() == response.headers["x-mock-sha256"] == binary_sha256(size)
    assert hashlib.sha256(binary_payload(size)).hexdigest() == binary_sha256(size)


def test_binary_small_matches_payload(mock: MockUpstream, http: requests.Session) -> None:
    response = http.get(f"{mock.url}/v1/binary/100000")
    assert response.content == binary_payload(100000)


def test_status_scenarios(
    mock: MockUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic, http: requests.Session
) -> None:
    with pytest.raises(openai.APIStatusError) as openai_failure:
        oai.chat.completions.create(
            model="m", messages=[], extra_headers={"x-mock-status": "503", "x-mock-tag": "503"}
        )
    with pytest.raises(anthropic.APIStatusError) as anthropic_failure:
        claude.messages.create(
            model="m", max_tokens=1, messages=[], extra_headers={"x-mock-status": "529"}
        )
    verbatim = http.post(
        f"{mock.url}/v1/embeddings",
        json={"input": "x"},
        headers={"x-mock-status": "400", "x-mock-error-body": "not json at all"},
    )

    assert openai_failure.value.status_code == 503
    assert openai_failure.value.body == {
        "message": "mock error 503",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
    assert anthropic_failure.value.status_code == 529
    assert anthropic_failure.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "mock error 529"},
    }
    assert (verbatim.status_code, verbatim.text) == (400, "not json at all")
    assert mock.wait_for(lambda r: r.tag == "503").path == "/v1/chat/completions"


def test_cut_after_leaves_stream_unfinished(mock: MockUpstream, http: requests.Session) -> None:
    received: list[str | bytes] = []
    with (
        http.post(
            f"{mock.url}/v1/chat/completions",
            json={"stream": True},
            headers={"x-mock-cut-after": "3", "x-mock-tag": "cut"},
            stream=True,
        ) as response,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        received.extend(response.iter_lines(decode_unicode=True))

    events = [line for line in received if line]
    assert len(events) == 3
    assert "data: [DONE]" not in events
    cut = mock.tag("cut")
    assert not cut.finished.is_set() and not cut.disconnected.is_set()


def test_cut_after_truncates_binary(mock: MockUpstream, http: requests.Session) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{mock.url}/binary/1000000", headers={"x-mock-cut-after": "2"})


def test_reset_sends_nothing(mock: MockUpstream, http: requests.Session) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(f"{mock.url}/v1/chat/completions", json={}, headers={"x-mock-reset": "1"})
    assert mock.wait_for(lambda r: r.headers.get("x-mock-reset") == "1").body_size == 2


def test_tag_reports_early_disconnect(mock: MockUpstream, http: requests.Session) -> None:
    events = mock.tag("hang-up")
    response = http.post(
        f"{mock.url}/v1/messages",
        json={"stream": True},
        headers={"x-mock-tag": "hang-up", "x-mock-stall-after": "2"},
        stream=True,
    )
    next(response.iter_content(None))
    assert events.received.is_set() and events.first_chunk_sent.wait(2)

    response.close()

    assert events.disconnected.wait(2)
    assert events.disconnected_at is not None and events.disconnected_at >= events.chunk_times[-1]
    assert len(events.chunk_times) == 2
    assert not events.finished.is_set()


def test_disconnect_during_chunk_delay(mock: MockUpstream, http: requests.Session) -> None:
    events = mock.tag("slow")
    response = http.post(
        f"{mock.url}/v1/responses",
        json={"stream": True},
        headers={"x-mock-tag": "slow", "x-mock-chunk-delay-ms": "10000"},
        stream=True,
    )
    next(response.iter_content(None))
    response.close()

    assert events.disconnected.wait(2)


def test_delay_and_chunk_delay(mock: MockUpstream, http: requests.Session) -> None:
    events = mock.tag("paced")
    http.post(
        f"{mock.url}/v1/chat/completions",
        json={"stream": True},
        headers={
            "x-mock-tag": "paced",
            "x-mock-delay-ms": "100",
            "x-mock-chunks": "3",
            "x-mock-chunk-delay-ms": "20",
        },
    )

    assert events.finished.wait(2) and events.received_at is not None
    assert events.chunk_times[0] - events.received_at >= 0.1
    gaps = [b - a for a, b in zip(events.chunk_times, events.chunk_times[1:], strict=False)]
    assert len(gaps) == 1 + 3 + 1 and min(gaps) >= 0.02


def test_gzip_body(mock: MockUpstream, http: requests.Session) -> None:
    response = http.get(f"{mock.url}/v1/models", headers={"x-mock-gzip": "1"}, stream=True)
    raw = response.raw.read(decode_content=False)

    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(raw)
    assert b'"object":"list"' in gzip.decompress(raw)


def test_echo_and_not_found(mock: MockUpstream, http: requests.Session) -> None:
    echo = http.put(f"{mock.url}/v1/echo/a/b?x=1&y=%20", data=b"payload", headers={"X-Custom": "v"})
    missing = http.get(f"{mock.url}/v2/nothing")
    first = int(echo.headers["x-mock-request-id"])

    assert echo.json() | {"headers": {}} == {
        "method": "PUT",
        "path": "/v1/echo/a/b",
        "query": "x=1&y=%20",
        "headers": {},
        "body_size": 7,
        "body_sha256": hashlib.sha256(b"payload").hexdigest(),
    }
    assert echo.json()["headers"]["x-custom"] == "v"
    assert ("X-Custom", "v") in mock.wait_for(lambda r: r.path == "/v1/echo/a/b").raw_headers
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert int(missing.headers["x-mock-request-id"]) > first


def test_wait_for_times_out(mock: MockUpstream) -> None:
    with pytest.raises(TimeoutError):
        mock.wait_for(lambda r: r.path == "/never", timeout=0.05)


def test_command_line_server() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.upstream", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("listening on http://127.0.0.1:")
            url = line.split()[-1]
            assert requests.get(f"{url}/v1/models").json()["object"] == "list"
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
