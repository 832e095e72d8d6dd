"""Translation between the OpenAI chat format and Anthropic's and Gemini's, both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simple_gateway.translate import (
    anthropic_request,
    anthropic_response,
    gemini_request,
    gemini_response,
)
from simple_gateway.translate.base import UnsupportedField


def events(data: bytes) -> list[Any]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def feed_bytewise(transform: Any, data: bytes) -> bytes:
    """Feed one byte at a time: events split anywhere must translate the same."""
    return b"".join(transform.feed(data[i : i + 1]) for i in range(len(data))) + transform.finish()


def sse(kind: str, obj: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(obj)}\n\n".encode()


ANTHROPIC_STREAM = b"".join(
    [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-x",
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
                },
            },
        ),
        sse("ping", {"type": "ping"}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hé"},
            },
        ),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu_1", "name": "f", "input": {}},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
            },
        ),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 7},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
)


@pytest.mark.parametrize("bytewise", [False, True])
def test_anthropic_stream_becomes_openai_chunks(bytewise: bool) -> None:
    transform = anthropic_response.StreamToChunks(include_usage=True)
    if bytewise:
        out = events(feed_bytewise(transform, ANTHROPIC_STREAM))
    else:
        out = events(transform.feed(ANTHROPIC_STREAM) + transform.finish())
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert out[1]["choices"][0]["delta"] == {"content": "Hé"}
    assert out[2]["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0,
        "id": "tu_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    args = "".join(
        e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for e in out[2:5]
    )
    assert json.loads(args) == {"a": 1}
    assert out[5]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[6]["choices"] == []
    assert out[6]["usage"]["prompt_tokens"] == 15
    assert out[6]["usage"]["completion_tokens"] == 7
    assert out[6]["usage"]["prompt_tokens_details"]["cached_tokens"] == 5
    assert out[7] == "[DONE]"
    assert all(e["id"] == "msg_1" and e["model"] == "claude-x" for e in out[:-1])


def test_each_anthropic_event_is_translated_as_it_arrives() -> None:
    transform = anthropic_response.StreamToChunks(include_usage=False)
    first, _, rest = ANTHROPIC_STREAM.partition(b"\n\n")
    assert events(transform.feed(first + b"\n\n"))  # a chunk out before the rest arrives
    tail = events(transform.feed(rest) + transform.finish())
    assert tail[-2]["usage"]["completion_tokens"] == 7  # usage on the last chunk
    assert tail[-1] == "[DONE]"


def test_a_cut_anthropic_stream_gets_no_invented_done() -> None:
    transform = anthropic_response.StreamToChunks(include_usage=False)
    cut = ANTHROPIC_STREAM.split(b"event: message_stop")[0]
    assert "[DONE]" not in events(transform.feed(cut) + transform.finish())


def test_anthropic_message_becomes_a_chat_completion() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "tu", "name": "f", "input": {"x": [1]}},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 3, "cache_creation_input_tokens": 2, "output_tokens": 4},
    }
    body = json.loads(anthropic_response.message_to_completion(json.dumps(message).encode()))
    choice = body["choices"][0]
    assert choice["message"]["content"] == "ok"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": [1]}
    assert choice["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["total_tokens"] == 9


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_anthropic_stop_reasons(reason: str, finish: str) -> None:
    assert anthropic_response.finish_reason(reason) == finish


def test_anthropic_request_mapping() -> None:
    out = anthropic_request.to_anthropic(
        {
            "model": "alias",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
            ],
            "max_completion_tokens": 9,
            "top_p": 0.5,
            "user": "u-1",
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        "claude-x",
        4096,
    )
    assert out["system"] == [{"type": "text", "text": "rules"}]
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert out["max_tokens"] == 9 and out["top_p"] == 0.5
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"temperature": 1.5}, "'temperature'"),
        ({"seed": 3}, "'seed'"),
        ({"logit_bias": {"1": 2}}, "'logit_bias'"),
        ({"modalities": ["text", "audio"]}, "'modalities'"),
        ({"something_new": 1}, "'something_new'"),
        ({"tools": [{"type": "web_search"}]}, "'tools[0].type'"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "'messages[0].name'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
            "'messages[0].content[0].type'",
        ),
    ],
)
def test_anthropic_refuses_what_it_cannot_carry(extra: dict[str, Any], named: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UnsupportedField, match=named.replace("[", r"\[").replace("]", r"\]")):
        anthropic_request.to_anthropic(body, "claude-x", 4096)


GEMINI_STREAM = b"".join(
    f"data: {json.dumps(chunk)}\r\n\r\n".encode()
    for chunk in [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
            "modelVersion": "g-1",
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "lo", "thought": False}]}}
            ]
        },
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 8,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 2,
                "cachedContentTokenCount": 1,
            },
        },
    ]
)


@pytest.mark.parametrize("bytewise", [False, True])
def test_gemini_stream_becomes_openai_chunks(bytewise: bool) -> None:
    transform = gemini_response.StreamToChunks("gemini-x", include_usage=False)
    data = (
        feed_bytewise(transform, GEMINI_STREAM)
        if bytewise
        else transform.feed(GEMINI_STREAM) + transform.finish()
    )
    out = events(data)
    assert [e["choices"][0]["delta"].get("content") for e in out[:3]] == ["", "Hel", "lo"]
    call = out[3]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["function"]["name"] == "f"
    assert json.loads(call["function"]["arguments"]) == {"a": 1}
    assert out[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[4]["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 5,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert out[5] == "[DONE]"
    assert out[0]["model"] == "g-1"


def test_a_cut_gemini_stream_gets_no_invented_done() -> None:
    transform = gemini_response.StreamToChunks("gemini-x", include_usage=False)
    first = GEMINI_STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert "[DONE]" not in events(transform.feed(first) + transform.finish())


def test_gemini_candidates_become_choices() -> None:
    response = {
        "candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS", "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "SAFETY", "index": 1},
        ]
    }
    body = json.loads(gemini_response.response_to_completion("g")(json.dumps(response).encode()))
    assert [(c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        ("a", "length"),
        ("b", "content_filter"),
    ]


def test_gemini_request_mapping() -> None:
    out = gemini_request.to_gemini(
        {
            "model": "alias",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "QQ", "format": "wav"}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ],
            "n": 2,
            "seed": 7,
            "temperature": 1.2,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "object"}},
            },
            "tool_choice": "none",
        },
        100,
    )
    assert out["contents"] == [
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "audio/wav", "data": "QQ"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://x/y.png"}},
            ],
        }
    ]
    assert out["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 1.2,
        "candidateCount": 2,
        "seed": 7,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logprobs": True}, "'logprobs'"),
        ({"user": "u"}, "'user'"),
        ({"parallel_tool_calls": False}, "'parallel_tool_calls'"),
        ({"messages": [{"role": "function", "content": "x"}]}, "'messages[0].role'"),
    ],
)
def test_gemini_refuses_what_it_cannot_carry(extra: dict[str, Any], named: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UnsupportedField, match=named.replace("[", r"\[").replace("]", r"\]")):
        gemini_request.to_gemini(body, 4096)


def test_gemini_embeddings_as_base64() -> None:
    convert = gemini_response.embeddings_to_openai("e", as_base64=True)
    body = json.loads(convert(b'{"embeddings": [{"values": [1.0, 2.0]}]}'))
    assert body["data"][0]["embedding"] == "AACAPwAAAEA="
