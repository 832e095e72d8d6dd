"""Gemini generateContent responses (whole, streamed, errors) and embeddings -> OpenAI."""

from __future__ import annotations

import base64
import json
import struct
import time
from itertools import count
from typing import Any

from simple_gateway.ids import new_id
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

FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


def finish_reason(reason: Any, called: bool) -> str | None:
    if reason in (None, "", "FINISH_REASON_UNSPECIFIED"):
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def usage(meta: Any) -> JSON | None:
    if not isinstance(meta, dict):
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return openai_usage(
        int(meta.get("promptTokenCount") or 0),
        completion,
        cached=int(meta.get("cachedContentTokenCount") or 0),
        reasoning=thoughts,
    )


def _parts(candidate: JSON) -> tuple[str, list[JSON]]:
    """The visible text and the function calls of a candidate (thought summaries skipped)."""
    text: list[str] = []
    calls: list[JSON] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            text.append(str(part["text"]))
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            calls.append(
                {
                    "id": str(call.get("id") or f"call_{new_id()}"),
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
                    },
                }
            )
    return "".join(text), calls


def response_to_completion(model: str) -> Any:
    def convert(data: bytes) -> bytes:
        response = loads_object(data)
        if response is None:
            return openai_error(502, "the provider sent a reply that is not a JSON object")
        choices = []
        for position, candidate in enumerate(response.get("candidates") or []):
            text, calls = _parts(candidate)
            message: JSON = {"role": "assistant", "content": text or None, "refusal": None}
            if calls:
                message["tool_calls"] = calls
            reason = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
            index = candidate.get("index", position)
            choices.append(
                {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
            )
        completion_id = str(response.get("responseId") or f"chatcmpl-{new_id()}")
        name = str(response.get("modelVersion") or model)
        return dumps(
            chat_completion(completion_id, name, choices, usage(response.get("usageMetadata")))
        )

    return convert


def embeddings_to_openai(model: str, as_base64: bool) -> Any:
    def convert(data: bytes) -> bytes:
        response = loads_object(data)
        if response is None:
            return openai_error(502, "the provider sent a reply that is not a JSON object")
        items = []
        for index, embedding in enumerate(response.get("embeddings") or []):
            values = [float(v) for v in embedding.get("values") or []]
            vector: Any = values
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            items.append({"object": "embedding", "index": index, "embedding": vector})
        body = {
            "object": "list",
            "data": items,
            "model": model,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},  # Gemini does not report it
        }
        return dumps(body)

    return convert


def error_to_openai(status: int) -> Any:
    def convert(data: bytes) -> bytes:
        body = loads_object(data) or {}
        found = body.get("error")
        error: JSON = found if isinstance(found, dict) else {}
        message = str(error.get("message") or data[:500].decode("utf-8", "replace"))
        return openai_error(status, message, str(error.get("status") or "").lower() or None)

    return convert


class StreamToChunks:
    """Gemini `streamGenerateContent?alt=sse` events -> OpenAI chat.completion.chunk events."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._decoder = SSEDecoder()
        self._id = f"chatcmpl-{new_id()}"
        self._created = int(time.time())
        self._started = False
        self._calls = count()
        self._called = False
        self._finish: str | None = None
        self._usage: JSON | None = None

    def feed(self, data: bytes) -> bytes:
        out = []
        for _name, payload in self._decoder.feed(data):
            response = loads_object(payload)
            if response is not None:
                out.extend(self._response(response))
        return b"".join(out)

    def finish(self) -> bytes:
        if self._finish is None:
            return b""  # no finish reason seen: the stream was cut short
        last = self._chunk({}, self._finish)
        if not self._include_usage:
            if self._usage is not None:
                last["usage"] = self._usage
            return sse(last) + SSE_DONE
        usage_chunk = {**self._chunk({}), "choices": [], "usage": self._usage}
        return sse(last) + sse(usage_chunk) + SSE_DONE

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return chunk(self._id, self._model, self._created, delta, finish)

    def _response(self, response: JSON) -> list[bytes]:
        if isinstance(response.get("error"), dict):
            error = response["error"]
            return [sse({"error": {"message": error.get("message"), "type": error.get("status")}})]
        self._model = str(response.get("modelVersion") or self._model)
        if response.get("usageMetadata"):
            self._usage = usage(response["usageMetadata"])
        out = []
        if not self._started:
            self._started = True
            out.append(sse(self._chunk({"role": "assistant", "content": ""})))
        for candidate in (response.get("candidates") or [])[:1]:
            text, calls = _parts(candidate)
            if text:
                out.append(sse(self._chunk({"content": text})))
            if calls:
                self._called = True
                deltas = [{"index": next(self._calls), **call} for call in calls]
                out.append(sse(self._chunk({"tool_calls": deltas})))
            reason = finish_reason(candidate.get("finishReason"), self._called)
            if reason is not None:
                self._finish = reason
        return out
