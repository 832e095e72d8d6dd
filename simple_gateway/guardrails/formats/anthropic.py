"""The Anthropic family: the Messages API.

Errors are `{"type": "error", "error": {"type", "message"}}`; a stream is ended with an
`event: error` event of that shape, which the official SDK raises on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from simple_gateway.guardrails.formats import Refusal, Slot, register_format, text_slots
from simple_gateway.ids import new_id
from simple_gateway.proxy.sse import SSEEvent

_ENDS = frozenset({"content_block_stop", "message_delta", "message_stop"})


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: ".encode() + _dump(obj) + b"\n\n"


class Messages:
    family = "anthropic"

    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots = text_slots(body, "system", ("text",))
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                slots += text_slots(message, "content", ("text",))
        return slots

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        return text_slots(body, "content", ("text",))

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        if isinstance(data, dict) and data.get("type") == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("text"), str):
                return str(delta["text"])
        return None

    def ends_stream(self, event: SSEEvent, data: Any) -> bool:
        kind = data.get("type") if isinstance(data, dict) else event.event
        return kind in _ENDS

    def error_body(self, refusal: Refusal) -> bytes:
        return _dump(_error(refusal))

    def stream_error(self, refusal: Refusal) -> bytes:
        return _event(_error(refusal))

    def completion(self, text: str, model: str) -> bytes | None:
        return _dump(_message(model, [{"type": "text", "text": text}], "end_turn"))

    def completion_stream(self, text: str, model: str) -> bytes | None:
        text_block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": text}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": _message(model, [], None)},
            {"type": "content_block_start", "index": 0, "content_block": text_block},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 0},
            },
            {"type": "message_stop"},
        ]
        return b"".join(_event(e) for e in events)


def _message(model: str, content: list[Any], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": "msg_" + new_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def _error(refusal: Refusal) -> dict[str, Any]:
    kind = "api_error" if refusal.unavailable else "invalid_request_error"
    return {"type": "error", "error": {"type": kind, "message": refusal.message}}


def register() -> None:
    register_format("/messages", Messages())
