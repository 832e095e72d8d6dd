"""Where each route keeps its text, and the refusal shapes the official SDKs accept."""

from __future__ import annotations

import json

from simple_gateway.guardrails.formats import format_for, register_builtin_formats
from simple_gateway.guardrails.refusal import Refusal
from simple_gateway.proxy.sse import parse_sse


def texts(path: str, body: dict, reply: bool = False) -> list[str]:
    register_builtin_formats()
    route = format_for(path)
    assert route is not None
    slots = route.response_slots(body) if reply else route.request_slots(body)
    return [s.get() for s in slots]


def test_request_text_of_every_route() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "t"}, {"type": "image_url"}]},
            {"role": "assistant", "content": None, "tool_calls": []},
        ]
    }
    assert texts("/v1/chat/completions", chat) == ["sys", "t"]
    assert texts("/v1/completions", {"prompt": ["a", "b"]}) == ["a", "b"]
    assert texts("/v1/embeddings", {"input": "e"}) == ["e"]
    assert texts("/v1/embeddings", {"input": [1, 2, 3]}) == []
    responses = {
        "instructions": "i",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "u"}]}],
    }
    assert texts("/v1/responses", responses) == ["i", "u"]
    assert texts("/openai/v1/responses", {"input": "plain"}) == ["plain"]
    anthropic = {
        "system": [{"type": "text", "text": "s"}],
        "messages": [{"role": "user", "content": "m"}],
    }
    assert texts("/v1/messages", anthropic) == ["s", "m"]
    assert texts("/v1/images/generations", {"prompt": "p"}) == ["p"]


def test_reply_text_and_writing_it_back() -> None:
    register_builtin_formats()
    body = {"choices": [{"message": {"content": "hello"}}, {"message": {"content": "bye"}}]}
    route = format_for("/v1/chat/completions")
    assert route is not None
    slots = route.response_slots(body)
    slots[1].set("ciao")
    assert body["choices"][1]["message"]["content"] == "ciao"
    output = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "r"}]}]}
    assert texts("/v1/responses", output, reply=True) == ["r"]
    assert texts("/v1/messages", {"content": [{"type": "text", "text": "a"}]}, reply=True) == ["a"]


def test_stream_errors_never_end_with_done() -> None:
    register_builtin_formats()
    refusal = Refusal("g", "no", 400, unavailable=False, completion=False)
    openai_route = format_for("/v1/chat/completions")
    anthropic_route = format_for("/v1/messages")
    assert openai_route is not None and anthropic_route is not None
    (event,) = parse_sse(openai_route.stream_error(refusal))
    assert json.loads(event.data)["error"]["code"] == "content_policy_violation"
    (event,) = parse_sse(anthropic_route.stream_error(refusal))
    assert event.event == "error"
    assert json.loads(event.data)["error"]["type"] == "invalid_request_error"


def test_refusal_completions_are_well_formed_streams() -> None:
    register_builtin_formats()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"):
        route = format_for(path)
        assert route is not None
        stream = route.completion_stream("sorry", "m")
        assert stream is not None
        deltas = []
        ends = 0
        for event in parse_sse(stream):
            data = json.loads(event.data) if event.data.startswith("{") else None
            deltas.append(route.stream_delta(event, data) or "")
            ends += route.ends_stream(event, data)
        assert "".join(deltas) == "sorry", path
        assert ends, path
        assert json.loads(route.completion("sorry", "m") or b"{}"), path
    embeddings = format_for("/v1/embeddings")
    assert embeddings is not None and embeddings.completion("x", "m") is None
