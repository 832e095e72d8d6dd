"""The stream guard: chunks flow, the end is held until the whole reply passed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from simple_gateway.guardrails.service import Guardrails
from simple_gateway.guardrails.stream import StreamGuard
from simple_gateway.providers import Route, build_provider, register_builtin_types
from simple_gateway.records.model import Outcome, Record
from simple_gateway.settings import ProviderConfig
from tests.unit.guardrails.helpers import FakeHTTP, config


class FakeResponse:
    status, reason, length = 200, "OK", 0

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    def read1(self, n: int = -1) -> bytes:
        return next(self._chunks, b"")

    def getheaders(self) -> list[tuple[str, str]]:
        return [("Content-Type", "text/event-stream")]

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return "text/event-stream" if name.lower() == "content-type" else default

    def close(self) -> None:
        pass


class FakeConn:
    aborted = False

    def abort(self) -> None:
        self.aborted = True


def chat_chunks(*texts: str) -> list[bytes]:
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}).encode()
        + b"\n\n"
        for t in texts
    ]  # fmt: skip
    return [*events, b"data: [DONE]\n\n"]


@pytest.fixture
def guard_for() -> Iterator[Any]:
    made: list[Guardrails] = []

    def build(output: list[dict[str, Any]], chunks: list[bytes]) -> tuple[StreamGuard, Record]:
        built = config({"stream_check_chars": 5, "output": output}, FakeHTTP())
        guardrails = Guardrails(built, FakeHTTP(), None)  # type: ignore[arg-type]
        made.append(guardrails)
        register_builtin_types()
        route = Route(
            build_provider(ProviderConfig("openai", "openai", "http://x", {})),
            "/v1/chat/completions",
        )
        record = Record("r", "r", 0.0, "openai", "POST", "/v1/chat/completions")
        exchange = guardrails.begin("r", record, route, {}, {})
        entries = exchange.applicable(guardrails.output.entries)
        stream = StreamGuard(exchange, entries, FakeConn(), FakeResponse(chunks))  # type: ignore[arg-type]
        return stream, record

    yield build
    for guardrails in made:
        guardrails.stop()


def drain(stream: StreamGuard) -> list[bytes]:
    out = []
    while chunk := stream.read1(65536):
        out.append(chunk)
    return out


def test_a_clean_stream_passes_byte_for_byte(guard_for: Any) -> None:
    chunks = chat_chunks("Hello. ", "How are ", "you?")
    stream, record = guard_for([{"name": "w", "type": "keywords", "words": ["bad"]}], chunks)
    assert drain(stream) == chunks
    assert record.outcome == Outcome.COMPLETED
    assert record.guardrail_runs and all(r.verdict == "pass" for r in record.guardrail_runs)


def test_a_failing_stream_ends_with_an_error_event_and_no_done(guard_for: Any) -> None:
    chunks = chat_chunks("fine. ", "then bad ", "words")
    stream, record = guard_for([{"name": "w", "type": "keywords", "words": ["bad"]}], chunks)
    body = b"".join(drain(stream))
    assert b"[DONE]" not in body
    last = body.strip().split(b"\n\n")[-1]
    assert json.loads(last[len(b"data: ") :])["error"]["guardrail"] == "w"
    assert (record.outcome, record.blocked_by) == (Outcome.BLOCKED, "w")
    assert stream._conn.aborted  # type: ignore[attr-defined]


def test_buffer_mode_holds_everything_and_sends_a_replacement(guard_for: Any) -> None:
    chunks = chat_chunks("secret ", "plan")
    entry = {
        "name": "r", "type": "regex", "pattern": "secret", "action": "redact",
        "replacement": "public", "stream": "buffer",
    }  # fmt: skip
    stream, _ = guard_for([entry], chunks)
    body = b"".join(drain(stream))
    assert b"secret" not in body and b"public plan" in body and body.endswith(b"[DONE]\n\n")
