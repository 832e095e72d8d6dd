"""The OpenAI family: chat completions, legacy completions, embeddings, the Responses API.

Error bodies follow OpenAI's `{"error": {...}}`; a stream is ended with a `data:` event
carrying that object, which the official SDK raises on, and never with `[DONE]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from simple_gateway.guardrails.formats import (
    Refusal,
    Slot,
    register_fallback,
    register_format,
    text_slots,
)
from simple_gateway.ids import new_id
from simple_gateway.proxy.sse import SSEEvent

_CHAT_PARTS = ("text", "input_text")
_RESPONSE_PARTS = ("input_text", "output_text", "text")


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _data(obj: Any) -> bytes:
    return b"data: " + _dump(obj) + b"\n\n"


class OpenAIFamily:
    family = "openai"

    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots = text_slots(body, "prompt", ())
        slots += text_slots(body, "input", _RESPONSE_PARTS)
        return slots

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        return []

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        return None

    def ends_stream(self, event: SSEEvent, data: Any) -> bool:
        return event.data.strip() == "[DONE]"

    def error_body(self, refusal: Refusal) -> bytes:
        return _dump({"error": _error(refusal)})

    def stream_error(self, refusal: Refusal) -> bytes:
        return _data({"error": _error(refusal)})

    def completion(self, text: str, model: str) -> bytes | None:
        return None

    def completion_stream(self, text: str, model: str) -> bytes | None:
        return None


def _error(refusal: Refusal) -> dict[str, Any]:
    if refusal.unavailable:
        kind, code = "gateway_error", "guardrail_unavailable"
    else:
        kind, code = "guardrail_blocked", "content_policy_violation"
    return {"message": refusal.message, "type": kind, "code": code, "guardrail": refusal.guardrail}


class ChatCompletions(OpenAIFamily):
    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                slots += text_slots(message, "content", _CHAT_PARTS)
        return slots

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        for choice in _list(body.get("choices")):
            message = choice.get("message") if isinstance(choice, dict) else None
            slots += text_slots(message, "content", ())
        return slots

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        texts = []
        for choice in _list(data.get("choices") if isinstance(data, dict) else None):
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                texts.append(delta["content"])
        return "".join(texts) or None

    def completion(self, text: str, model: str) -> bytes | None:
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        body = _head("chatcmpl-", "chat.completion", model)
        body |= {"choices": [choice], "usage": _no_usage()}
        return _dump(body)

    def completion_stream(self, text: str, model: str) -> bytes | None:
        head = _head("chatcmpl-", "chat.completion.chunk", model)
        blank = {"index": 0, "logprobs": None, "finish_reason": None}
        events = [
            {**head, "choices": [{**blank, "delta": {"role": "assistant", "content": text}}]},
            {**head, "choices": [{**blank, "delta": {}, "finish_reason": "stop"}]},
        ]
        return b"".join(_data(e) for e in events) + b"data: [DONE]\n\n"


class Completions(OpenAIFamily):
    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        return text_slots(body, "prompt", ())

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        return [
            Slot(choice, "text")
            for choice in _list(body.get("choices"))
            if isinstance(choice, dict) and isinstance(choice.get("text"), str)
        ]

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        choices = _list(data.get("choices") if isinstance(data, dict) else None)
        texts = [
            c["text"] for c in choices if isinstance(c, dict) and isinstance(c.get("text"), str)
        ]
        return "".join(texts) or None

    def completion(self, text: str, model: str) -> bytes | None:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
        body = _head("cmpl-", "text_completion", model) | {
            "choices": [choice],
            "usage": _no_usage(),
        }
        return _dump(body)

    def completion_stream(self, text: str, model: str) -> bytes | None:
        head = _head("cmpl-", "text_completion", model)
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
        return _data({**head, "choices": [choice]}) + b"data: [DONE]\n\n"


class Embeddings(OpenAIFamily):
    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        return text_slots(body, "input", ())


class Responses(OpenAIFamily):
    _ENDS = frozenset(
        {
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
            "response.incomplete",
            "response.failed",
        }
    )

    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots = text_slots(body, "instructions", ())
        value = body.get("input")
        if isinstance(value, str):
            return [*slots, Slot(body, "input")]
        for item in _list(value):
            if isinstance(item, dict):
                slots += text_slots(item, "content", _RESPONSE_PARTS)
        return slots

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        for item in _list(body.get("output")):
            if isinstance(item, dict) and item.get("type") == "message":
                slots += text_slots(item, "content", ("output_text",))
        return slots

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        if isinstance(data, dict) and data.get("type") == "response.output_text.delta":
            delta = data.get("delta")
            return delta if isinstance(delta, str) else None
        return None

    def ends_stream(self, event: SSEEvent, data: Any) -> bool:
        kind = data.get("type") if isinstance(data, dict) else event.event
        return kind in self._ENDS or event.data.strip() == "[DONE]"

    def completion(self, text: str, model: str) -> bytes | None:
        return _dump(_response(text, model, "completed"))

    def completion_stream(self, text: str, model: str) -> bytes | None:
        return b"".join(_numbered(_response_events(text, model)))


def _response(text: str | None, model: str, status: str) -> dict[str, Any]:
    output = [] if text is None else [_message_item(text)]
    return {
        "id": "resp_" + new_id(),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": None,
    }


def _message_item(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {
        "type": "message",
        "id": "msg_gateway",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def _response_events(text: str, model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    where = {"item_id": "msg_gateway", "output_index": 0, "content_index": 0}
    yield "response.created", {"response": _response(None, model, "in_progress")}
    yield "response.output_text.delta", {**where, "delta": text}
    yield "response.output_text.done", {**where, "text": text}
    yield "response.completed", {"response": _response(text, model, "completed")}


def _numbered(events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[bytes]:
    for sequence, (kind, body) in enumerate(events):
        payload = _dump({"type": kind, "sequence_number": sequence, **body}).decode()
        yield f"event: {kind}\ndata: {payload}\n\n".encode()


def _head(prefix: str, kind: str, model: str) -> dict[str, Any]:
    return {"id": prefix + new_id(), "object": kind, "created": int(time.time()), "model": model}


def _no_usage() -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def register() -> None:
    register_format("/chat/completions", ChatCompletions())
    register_format("/completions", Completions())
    register_format("/embeddings", Embeddings())
    register_format("/responses", Responses())
    register_fallback(OpenAIFamily())
