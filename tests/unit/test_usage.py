import json
import logging
from typing import Any

import pytest

from simple_gateway.proxy.sse import SSEEvent, parse_sse
from simple_gateway.records.usage import (
    JSON,
    ShapeRegistry,
    StreamState,
    Usage,
    model_from_json,
    register_builtins,
    summarise_stream,
    text_from_json,
    usage_from_json,
)

CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

OLLAMA_CHAT = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1,
    "model": "llama3.2",
    "system_fingerprint": "fp_ollama",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 26, "completion_tokens": 5, "total_tokens": 31},
}

COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "gpt-3.5-turbo-instruct",
    "choices": [{"text": "\n\nThis is a test.", "index": 0, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}

RESPONSE = {
    "id": "resp_67ccd2bed1ec8190",
    "object": "response",
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "In a peaceful grove, ", "annotations": []},
                {"type": "output_text", "text": "a unicorn slept.", "annotations": []},
            ],
        },
    ],
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 123,
    },
}

EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}

ANTHROPIC = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "text", "text": "Hi! "},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        {"type": "text", "text": "Done."},
    ],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188,
        "cache_read_input_tokens": 1000,
        "output_tokens": 393,
        "service_tier": "standard",
    },
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            CHAT,
            Usage(
                input_tokens=1117,
                output_tokens=46,
                cached_tokens=1024,
                reasoning_tokens=12,
                source="response.body",
            ),
        ),
        (OLLAMA_CHAT, Usage(input_tokens=26, output_tokens=5, source="response.body")),
        (COMPLETION, Usage(input_tokens=5, output_tokens=7, source="response.body")),
        (
            RESPONSE,
            Usage(
                input_tokens=36,
                output_tokens=87,
                cached_tokens=0,
                reasoning_tokens=64,
                source="response.body",
            ),
        ),
        (EMBEDDINGS, Usage(input_tokens=8, output_tokens=0, source="response.body")),
        (
            ANTHROPIC,
            Usage(input_tokens=1209, output_tokens=393, cached_tokens=1000, source="response.body"),
        ),
    ],
)
def test_usage_from_bodies(body: dict[str, Any], expected: Usage) -> None:
    assert usage_from_json(body) == expected


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (CHAT, "Hello there!"),
        (COMPLETION, "\n\nThis is a test."),
        (RESPONSE, "In a peaceful grove, a unicorn slept."),
        (ANTHROPIC, "Hi! Done."),
        (EMBEDDINGS, None),
    ],
)
def test_text_from_bodies(body: dict[str, Any], text: str | None) -> None:
    assert text_from_json(body) == text


def test_model_from_json() -> None:
    assert model_from_json(CHAT) == "gpt-4o-2024-08-06"
    assert model_from_json(ANTHROPIC) == "claude-sonnet-4-20250514"
    assert model_from_json({"model": ""}) is None
    assert model_from_json([1]) is None


def test_no_usage_in_errors_and_non_objects() -> None:
    error = {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}
    assert usage_from_json(error) is None
    assert text_from_json(error) is None
    assert usage_from_json([CHAT]) is None
    assert usage_from_json(None) is None
    assert usage_from_json({**CHAT, "usage": None}) is None


def test_chat_content_as_parts_and_tool_calls() -> None:
    parts = {
        "choices": [
            {"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}
        ]
    }
    tools = {"choices": [{"message": {"content": None, "tool_calls": [{"id": "c"}]}}]}
    assert text_from_json(parts) == "ab"
    assert text_from_json(tools) is None


def test_unknown_endpoint_with_usage_falls_back_by_shape() -> None:
    image = {
        "created": 1,
        "data": [],
        "usage": {
            "input_tokens": 50,
            "output_tokens": 4160,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
        },
    }
    assert usage_from_json(image) == Usage(
        input_tokens=50, output_tokens=4160, source="response.body"
    )


def sse(*objs: Any, done: bool = False) -> bytes:
    out = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chat_chunk(content: str | None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        **extra,
    }


def test_openai_chat_stream_with_include_usage() -> None:
    transcript = sse(
        {
            **chat_chunk(None),
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        chat_chunk("Hel"),
        {**chat_chunk("IGNORED"), "choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        chat_chunk("lo", usage=None),
        {
            **chat_chunk(None),
            "choices": [],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
        done=True,
    )
    summary = summarise_stream(parse_sse(transcript))
    assert summary.text == "Hello"
    assert summary.model == "gpt-4o-mini-2024-07-18"
    assert summary.usage == Usage(
        input_tokens=9,
        output_tokens=2,
        cached_tokens=0,
        reasoning_tokens=0,
        source="stream.final_event",
    )


def test_openai_chat_stream_without_usage() -> None:
    summary = summarise_stream(parse_sse(sse(chat_chunk("a"), chat_chunk("b"), done=True)))
    assert summary.usage is None
    assert summary.text == "ab"


def test_completions_stream_text() -> None:
    chunk = {"object": "text_completion", "model": "m", "choices": [{"index": 0, "text": "x"}]}
    last = {
        "object": "text_completion",
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    }
    summary = summarise_stream(parse_sse(sse(chunk, chunk, last)))
    assert (summary.text, summary.usage and summary.usage.output_tokens) == ("xx", 2)


def responses_transcript(terminal: str) -> bytes:
    events = [
        {
            "type": "response.created",
            "response": {
                "id": "resp_1",
                "object": "response",
                "model": "gpt-5-2025-08-07",
                "usage": None,
            },
        },
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message"}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hi"},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": " there"},
        {"type": "response.output_text.done", "item_id": "msg_1", "text": "Hi there"},
        {"type": terminal, "response": {**RESPONSE, "model": "gpt-5-2025-08-07"}},
    ]
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )


@pytest.mark.parametrize(
    "terminal", ["response.completed", "response.incomplete", "response.failed"]
)
def test_responses_stream(terminal: str) -> None:
    summary = summarise_stream(parse_sse(responses_transcript(terminal)))
    assert summary.text == "Hi there"
    assert summary.model == "gpt-5-2025-08-07"
    assert summary.usage == Usage(
        input_tokens=36,
        output_tokens=87,
        cached_tokens=0,
        reasoning_tokens=64,
        source="stream.final_event",
    )


def test_responses_stream_cut_before_terminal_event_has_no_usage() -> None:
    transcript = responses_transcript("response.completed")
    cut = transcript[: transcript.rfind(b"event: response.completed")]
    assert summarise_stream(parse_sse(cut)).usage is None


def anthropic_sse(*events: dict[str, Any]) -> bytes:
    """Events framed as Anthropic sends them: `event:` names the type."""
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )


ANTHROPIC_STREAM = anthropic_sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-3-7-sonnet-20250219",
            "stop_reason": None,
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 2048,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "{}"},
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
)


def test_anthropic_stream() -> None:
    summary = summarise_stream(parse_sse(ANTHROPIC_STREAM))
    assert summary.text == "Hello!"
    assert summary.model == "claude-3-7-sonnet-20250219"
    assert summary.usage == Usage(
        input_tokens=25 + 2048, output_tokens=15, cached_tokens=2048, source="stream.final_event"
    )


def test_anthropic_stream_cut_after_start_reports_partial_source() -> None:
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.find(b"event: message_delta")]
    usage = summarise_stream(parse_sse(cut)).usage
    assert usage is not None and usage.source == "stream.message_start"
    assert usage.input_tokens == 2073


def test_anthropic_message_delta_with_cumulative_input_counts() -> None:
    delta = anthropic_sse(
        {
            "type": "message_delta",
            "delta": {},
            "usage": {
                "input_tokens": 30,
                "cache_read_input_tokens": 2048,
                "cache_creation_input_tokens": None,
                "output_tokens": 20,
            },
        }
    )
    head = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.find(b"event: message_delta")]
    usage = summarise_stream(parse_sse(head + delta)).usage
    assert usage == Usage(
        input_tokens=2078, output_tokens=20, cached_tokens=2048, source="stream.final_event"
    )


def test_non_json_events_are_skipped() -> None:
    events = [
        SSEEvent("message", "[DONE]"),
        SSEEvent("message", "{not json"),
        SSEEvent("x", "plain"),
    ]
    summary = summarise_stream(events)
    assert (summary.usage, summary.text, summary.model) == (None, "", None)


class Exploding:
    def matches(self, obj: JSON) -> bool:
        return True

    def usage(self, obj: JSON) -> Usage | None:
        raise RuntimeError("boom")

    def text(self, obj: JSON) -> str | None:
        raise RuntimeError("boom")


class ExplodingStream:
    def matches(self, event: SSEEvent, obj: JSON) -> bool:
        raise RuntimeError("boom")

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None:
        raise AssertionError("not reached")


def test_a_failing_shape_is_contained_and_the_others_still_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ShapeRegistry()
    registry.register_body(Exploding())
    registry.register_stream(ExplodingStream())
    register_builtins(registry)
    with caplog.at_level(logging.WARNING):
        assert usage_from_json(CHAT, registry) == usage_from_json(CHAT)
        assert text_from_json(CHAT, registry) == "Hello there!"
        summary = summarise_stream(parse_sse(ANTHROPIC_STREAM), registry)
    assert summary.text == "Hello!"
    failures = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 3  # usage, text, and the stream shape once, not once per event


class LlamaCppTimings:
    """A third-party shape: usage from a server's `timings` block."""

    def matches(self, obj: JSON) -> bool:
        return "timings" in obj

    def usage(self, obj: JSON) -> Usage | None:
        t = obj["timings"]
        return Usage(
            input_tokens=t["prompt_n"], output_tokens=t["predicted_n"], source="response.timings"
        )

    def text(self, obj: JSON) -> str | None:
        return obj.get("content")


def test_third_party_shape_registers_through_the_same_door() -> None:
    registry = ShapeRegistry()
    register_builtins(registry)
    body = {"content": "hey", "timings": {"prompt_n": 3, "predicted_n": 4}}
    assert usage_from_json(body, registry) is None
    registry.register_body(LlamaCppTimings(), first=True)
    assert usage_from_json(body, registry) == Usage(
        input_tokens=3, output_tokens=4, source="response.timings"
    )
    assert text_from_json(body, registry) == "hey"
