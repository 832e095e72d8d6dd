"""Anthropic Messages response (whole, streamed, or an error) -> OpenAI chat completion."""

from __future__ import annotations

import json
import time
from typing import Any

from simple_gateway.translate.base import (
    JSON,
    SSE_DONE,
    SSEDecoder,
    chat_completion,
    chunk,
    dumps,
    loads_object,
    openai_error,
    openai_usage,
    sse,
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def usage(raw: Any) -> JSON:
    raw = raw if isinstance(raw, dict) else {}
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cache_read + cache_write
    return openai_usage(prompt, int(raw.get("output_tokens") or 0), cached=cache_read)


def message_to_completion(data: bytes) -> bytes:
    message = loads_object(data)
    if message is None:
        return openai_error(502, "the provider sent a reply that is not a JSON object")
    text: list[str] = []
    calls: list[JSON] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
    reply: JSON = {"role": "assistant", "content": "".join(text) or None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason")),
    }
    model = str(message.get("model") or "")
    body = chat_completion(
        str(message.get("id") or ""), model, [choice], usage(message.get("usage"))
    )
    return dumps(body)


def error_to_openai(status: int) -> Any:
    def convert(data: bytes) -> bytes:
        body = loads_object(data) or {}
        found = body.get("error")
        error: JSON = found if isinstance(found, dict) else {}
        message = str(error.get("message") or data[:500].decode("utf-8", "replace"))
        return openai_error(status, message, str(error.get("type") or "") or None)

    return convert


class StreamToChunks:
    """Anthropic stream events -> OpenAI chat.completion.chunk events, one for one."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._decoder = SSEDecoder()
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._usage: JSON = {}
        self._stop_reason: Any = None
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._ended = False

    def feed(self, data: bytes) -> bytes:
        out = []
        for _name, payload in self._decoder.feed(data):
            event = loads_object(payload)
            if event is not None:
                out.extend(self._event(event))
        return b"".join(out)

    def finish(self) -> bytes:
        # A stream that ended without message_stop was cut short: no invented [DONE].
        return SSE_DONE if self._ended else b""

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return chunk(self._id, self._model, self._created, delta, finish)

    def _event(self, event: JSON) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = str(message.get("id") or "")
            self._model = str(message.get("model") or "")
            self._usage = dict(message.get("usage") or {})
            return [sse(self._chunk({"role": "assistant", "content": ""}))]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason")
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
            return []
        if kind == "message_stop":
            return self._stop()
        if kind == "error":
            error = event.get("error") or {}
            return [sse({"error": {"message": error.get("message"), "type": error.get("type")}})]
        return []  # ping, content_block_stop

    def _block_start(self, index: int, block: JSON) -> list[bytes]:
        if block.get("type") == "tool_use":
            call_index = self._tool_index[index] = len(self._tool_index)
            call = {
                "index": call_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [sse(self._chunk({"tool_calls": [call]}))]
        if block.get("type") == "text" and block.get("text"):
            return [sse(self._chunk({"content": block["text"]}))]
        return []

    def _block_delta(self, index: int, delta: JSON) -> list[bytes]:
        if delta.get("type") == "text_delta":
            return [sse(self._chunk({"content": delta.get("text", "")}))]
        if delta.get("type") == "input_json_delta" and index in self._tool_index:
            call = {
                "index": self._tool_index[index],
                "function": {"arguments": delta.get("partial_json", "")},
            }
            return [sse(self._chunk({"tool_calls": [call]}))]
        return []

    def _stop(self) -> list[bytes]:
        self._ended = True
        totals = usage(self._usage)
        last = self._chunk({}, finish_reason(self._stop_reason))
        if not self._include_usage:
            last["usage"] = totals  # keeps the record's usage right; the SDK accepts it
            return [sse(last)]
        usage_chunk = {**self._chunk({}), "choices": [], "usage": totals}
        return [sse(last), sse(usage_chunk)]
