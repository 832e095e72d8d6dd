"""What a wire format is, the errors translation raises, and helpers every format shares."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simple_gateway import errors

JSON = dict[str, Any]
DEFAULT_MAX_TOKENS = 4096


class UnsupportedField(errors.BadRequest):
    """A field of the client's request that the deployment's format cannot carry."""

    code = "unsupported_field"

    def __init__(self, field_path: str, provider_type: str, why: str = "") -> None:
        reason = f": {why}" if why else ""
        super().__init__(
            f"'{field_path}' cannot be sent to a {provider_type} deployment{reason}; "
            "remove it or use a model served in the OpenAI format"
        )
        self.field_path = field_path


def invalid(field_path: str, message: str) -> errors.BadRequest:
    error = errors.BadRequest(f"'{field_path}': {message}")
    error.code = "invalid_field"
    return error


@dataclass(frozen=True)
class UpstreamCall:
    """The request to send upstream: a path below the provider's base URL, headers, body."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    translated: bool = True  # the body is in another format than the client's


class BodyTransform(Protocol):
    """Turns the upstream's response bytes into the client's, as they arrive."""

    content_type: str

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """Called once the upstream body ended cleanly; returns what is left to send."""
        ...


class Buffered:
    """A whole-body transform: collects the upstream body and converts it at the end."""

    content_type = "application/json"

    def __init__(self, convert: Callable[[bytes], bytes]) -> None:
        self._convert = convert
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        self._parts.append(chunk)
        return b""

    def finish(self) -> bytes:
        return self._convert(b"".join(self._parts))


class SSEDecoder:
    """Splits a server-sent-event byte stream into (event, data) pairs as they complete."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buffer += chunk
        if b"\r" in self._buffer:  # CRLF line ends (Gemini's), possibly split across chunks
            self._buffer = self._buffer.replace(b"\r\n", b"\n")
        events = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            name, data = "", []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                events.append((name, "\n".join(data)))
        return events


def sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads_object(data: bytes | str) -> JSON | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def chat_completion(
    completion_id: str, model: str, choices: list[JSON], usage: JSON | None
) -> JSON:
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(completion_id: str, model: str, created: int, delta: JSON, finish: str | None) -> JSON:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def openai_usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> JSON:
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    return usage


def openai_error(status: int, message: str, kind: str | None = None) -> bytes:
    default = "server_error" if status >= 500 else "invalid_request_error"
    return dumps({"error": {"message": message, "type": kind or default, "code": None}})


def text_of(content: Any, where: str) -> str:
    """The text of a message content that must be plain text (a string or text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise invalid(f"{where}[{index}]", f"only text parts are allowed here, not {kind}")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise invalid(where, "expected a string or a list of content parts")


def parse_data_uri(url: str, where: str) -> tuple[str, str]:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URI."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise invalid(where, "expected an http(s) URL or a data:<type>;base64,<data> URI")
    return head[5:-7] or "application/octet-stream", data


def tool_arguments(raw: Any, where: str) -> Any:
    """A tool call's JSON-encoded arguments, decoded."""
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw or "{}")
    except (TypeError, ValueError):
        raise invalid(where, "tool call arguments must be a JSON object") from None


def reject_unknown(body: JSON, known: frozenset[str], provider_type: str) -> None:
    for name in body:
        if name not in known:
            raise UnsupportedField(name, provider_type, "the gateway has no mapping for it")


def reject_set(body: JSON, names: dict[str, str], provider_type: str) -> None:
    """400 for fields that are present with a value other than their neutral one."""
    for name, why in names.items():
        value = body.get(name)
        if value not in (None, False, 0, [], {}):
            raise UnsupportedField(name, provider_type, why)
