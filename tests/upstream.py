"""A scriptable mock AI-provider upstream: a real HTTP server for tests and benchmarks.

It speaks just enough of the OpenAI and Anthropic APIs for the official SDKs to parse its
answers, records every request it receives, and misbehaves on demand. Request headers
script each exchange:

=========================  ==============================================================
``x-mock-status``          reply with this status and a provider-shaped error body
``x-mock-error-body``      with ``x-mock-status``: send this text verbatim as the body
``x-mock-delay-ms``        wait before sending the response headers
``x-mock-chunks``          number of content deltas in a stream (default 5)
``x-mock-chunk-delay-ms``  pause between stream events or /binary chunks (default 0)
``x-mock-stall-after``     after k events (or chunks) stop writing and hold the connection
``x-mock-cut-after``       after k events (or chunks) abort the TCP connection
``x-mock-reset``           abort the connection without any response
``x-mock-gzip``            gzip a non-streaming body (``Content-Encoding: gzip``)
``x-mock-tag``             report the exchange's progress through ``MockUpstream.tag(name)``
=========================  ==============================================================

design: a single asyncio loop runs aiohttp's low-level ``web.Server`` with
``handler_cancellation=True``. When a peer closes its connection aiohttp cancels the
handler at whatever it is awaiting (a chunk delay, a stall, a write), so disconnects are
seen at once without polling, even for thousands of idle streams. Connections the mock
aborts itself (cut, reset) are flagged first so they are not reported as peer
disconnects. After such an abort the handler returns its response object and aiohttp's
final ``write_eof`` fails with a ``ConnectionError``, which it drops silently.

Run ``python -m tests.upstream --port 9000`` to serve from a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import gzip
import hashlib
import itertools
import json
import random
import signal
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, cast

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.streams import StreamReader

HEAD_LIMIT = 64 * 1024
CHUNK_SIZE = 64 * 1024
DEFAULT_CHUNKS = 5
MOCK_TEXT = "Hello from mock"
DEFAULT_MODEL = "mock-model"

_BLOCK_SIZE = 1 << 20
_BINARY_SEED = 0x5EED
_JSON_LIMIT = 32 << 20
_STALL_SECONDS = 120.0
_SHUTDOWN_TIMEOUT = 0.25
_SSE_TYPE = "text/event-stream; charset=utf-8"
_JSON_TYPE = "application/json"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class ReceivedRequest:
    """One request as the mock saw it; the body is counted and hashed, only its head kept."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body_size: int
    body_sha256: str
    body_head: bytes = field(repr=False)
    tag: str | None
    request_id: int = 0
    body_complete: bool = True

    def json(self) -> Any:
        """Parse the body as JSON; only possible when it fitted in ``body_head``."""
        return json.loads(self.body_head)


@dataclass
class TagEvents:
    """Progress of the exchanges sent with one ``x-mock-tag``; timestamps are monotonic.

    ``received`` is set once the request, body included, has been recorded.
    """

    received: threading.Event = field(default_factory=threading.Event)
    first_chunk_sent: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    chunk_times: list[float] = field(default_factory=list)
    received_at: float | None = None
    finished_at: float | None = None
    disconnected_at: float | None = None

    def _mark_received(self) -> None:
        self.received_at = time.monotonic()
        self.received.set()

    def _mark_chunk(self) -> None:
        self.chunk_times.append(time.monotonic())
        self.first_chunk_sent.set()

    def _mark_finished(self) -> None:
        self.finished_at = time.monotonic()
        self.finished.set()

    def _mark_disconnected(self) -> None:
        self.disconnected_at = time.monotonic()
        self.disconnected.set()


class _Untagged(TagEvents):
    """Sink for untagged exchanges, so the hot path neither branches nor accumulates."""

    def _mark_received(self) -> None:
        pass

    def _mark_chunk(self) -> None:
        pass

    def _mark_finished(self) -> None:
        pass

    def _mark_disconnected(self) -> None:
        pass


_UNTAGGED = _Untagged()


@functools.cache
def _binary_block() -> bytes:
    return random.Random(_BINARY_SEED).randbytes(_BLOCK_SIZE)


def _binary_chunks(n: int, size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Slices of the cycled block making up ``binary_payload(n)``; ``size`` divides 1 MiB."""
    block = memoryview(_binary_block())
    for start in range(0, n, size):
        offset = start % _BLOCK_SIZE
        yield block[offset : offset + min(size, n - start)]


@functools.lru_cache(maxsize=4)
def binary_payload(n: int) -> bytes:
    """The exact bytes ``GET /binary/<n>`` sends."""
    return b"".join(_binary_chunks(n, _BLOCK_SIZE))


@functools.lru_cache(maxsize=64)
def binary_sha256(n: int) -> str:
    """Hex SHA-256 of ``binary_payload(n)``, without building the payload."""
    digest = hashlib.sha256()
    for chunk in _binary_chunks(n, _BLOCK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def embedding_vector(index: int) -> list[float]:
    """The embedding returned for the ``index``-th input; exact in float32."""
    return [(index + j + 1) / 16 for j in range(8)]


class _BodyMeter:
    """Counts and hashes a body as it streams past, keeping at most ``head_limit`` bytes."""

    __slots__ = ("_digest", "_head", "_head_limit", "size")

    def __init__(self, head_limit: int = HEAD_LIMIT) -> None:
        self.size = 0
        self._digest = hashlib.sha256()
        self._head = bytearray()
        self._head_limit = head_limit

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._digest.update(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def head(self) -> bytes:
        return bytes(self._head)


class _MeteredContent:
    """The slice of ``StreamReader`` that ``MultipartReader`` uses, metering each byte once.

    Data the parser pushes back is kept here rather than in the underlying reader, so
    it is not hashed twice (and aiohttp's deprecated ``unread_data`` is never called).
    """

    def __init__(self, inner: StreamReader, meter: _BodyMeter) -> None:
        self._inner = inner
        self._meter = meter
        self._pending = b""

    def _metered(self, data: bytes) -> bytes:
        self._meter.update(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        if not self._pending:
            return self._metered(await self._inner.read(n))
        if n < 0:
            data, self._pending = self._pending, b""
            return data + self._metered(await self._inner.read())
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        end = self._pending.find(b"\n")
        if end >= 0:
            line, self._pending = self._pending[: end + 1], self._pending[end + 1 :]
            return line
        head, self._pending = self._pending, b""
        rest = await self._inner.readline(max_line_length=max_line_length)
        return head + self._metered(rest)

    def unread_data(self, data: bytes) -> None:
        self._pending = data + self._pending

    def at_eof(self) -> bool:
        return not self._pending and self._inner.at_eof()


@dataclass(frozen=True)
class _Upload:
    size: int
    sha256: str


async def _drain(request: web.BaseRequest, meter: _BodyMeter) -> None:
    while chunk := await request.content.readany():
        meter.update(chunk)


async def _read_json(request: web.BaseRequest, meter: _BodyMeter) -> dict[str, Any]:
    """The JSON object in the body, or ``{}``: the mock is lenient about what it is sent."""
    parts: list[bytes] = []
    while chunk := await request.content.readany():
        meter.update(chunk)
        if meter.size <= _JSON_LIMIT:
            parts.append(chunk)
    if meter.size > _JSON_LIMIT:
        return {}
    try:
        payload = json.loads(b"".join(parts))
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


async def _read_upload(request: web.BaseRequest, meter: _BodyMeter) -> _Upload | None:
    """Stream a multipart body, hashing its ``file`` part; None when there is none."""
    content = _MeteredContent(request.content, meter)
    upload = None
    if request.content_type.startswith("multipart/"):
        try:
            upload = await _hash_file_part(MultipartReader(request.headers, cast(Any, content)))
        except ValueError:
            upload = None
    while await content.read(CHUNK_SIZE):
        pass
    return upload


async def _hash_file_part(reader: MultipartReader) -> _Upload | None:
    upload = None
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            file_meter = _BodyMeter(head_limit=0)
            while chunk := await part.read_chunk(CHUNK_SIZE):
                file_meter.update(chunk)
            upload = _Upload(file_meter.size, file_meter.sha256)
        else:
            await part.release()
    return upload


class _ControlError(ValueError):
    pass


_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class _Controls:
    status: int | None = None
    error_body: str | None = None
    delay: float = 0.0
    chunks: int = DEFAULT_CHUNKS
    chunk_delay: float = 0.0
    stall_after: int | None = None
    cut_after: int | None = None
    reset: bool = False
    gzip: bool = False


_DEFAULT_CONTROLS = _Controls()


def _count_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _ControlError(f"invalid {name} header: {value!r}") from None
    if number < 0:
        raise _ControlError(f"invalid {name} header: {value!r}")
    return number


def _parse_controls(request: web.BaseRequest) -> _Controls:
    if not any(name[:7].lower() == b"x-mock-" for name, _ in request.raw_headers):
        return _DEFAULT_CONTROLS
    headers = request.headers
    status = _count_header(headers, "x-mock-status")
    if status is not None and not 100 <= status <= 999:
        raise _ControlError(f"invalid x-mock-status header: {status}")
    chunks = _count_header(headers, "x-mock-chunks")
    return _Controls(
        status=status,
        error_body=headers.get("x-mock-error-body"),
        delay=(_count_header(headers, "x-mock-delay-ms") or 0) / 1000,
        chunks=DEFAULT_CHUNKS if chunks is None else chunks,
        chunk_delay=(_count_header(headers, "x-mock-chunk-delay-ms") or 0) / 1000,
        stall_after=_count_header(headers, "x-mock-stall-after"),
        cut_after=_count_header(headers, "x-mock-cut-after"),
        reset=headers.get("x-mock-reset", "").lower() in _TRUE,
        gzip=headers.get("x-mock-gzip", "").lower() in _TRUE,
    )


@dataclass(frozen=True)
class _Reply:
    """A complete body, sent in one write with a Content-Length."""

    status: int
    body: bytes
    content_type: str = _JSON_TYPE


@dataclass(frozen=True)
class _Stream:
    """A 200 response written event by event (chunked unless ``length`` is given)."""

    events: Iterable[bytes | memoryview]
    content_type: str = _SSE_TYPE
    length: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class _Exchange:
    """Per-request state shared by the handler and the endpoint builders."""

    __slots__ = ("aborted", "controls", "events", "meter", "recorded", "request", "request_id")

    def __init__(self, request: web.BaseRequest, request_id: int, events: TagEvents) -> None:
        self.request = request
        self.request_id = request_id
        self.events = events
        self.meter = _BodyMeter()
        self.controls = _DEFAULT_CONTROLS
        self.recorded = False
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def ids(self, prefix: str) -> str:
        return f"{prefix}mock{self.request_id}"

    def snapshot(self, complete: bool) -> ReceivedRequest:
        request = self.request
        path, _, query = request.raw_path.partition("?")
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return ReceivedRequest(
            method=request.method,
            path=path,
            query=query,
            headers=headers,
            raw_headers=raw_headers,
            body_size=self.meter.size,
            body_sha256=self.meter.sha256,
            body_head=self.meter.head,
            tag=headers.get("x-mock-tag"),
            request_id=self.request_id,
            body_complete=complete,
        )


_Builder = Callable[[_Exchange, Any], _Reply | _Stream]
_ErrorShape = Callable[[int, str], bytes]


@dataclass(frozen=True)
class _Route:
    consume: Callable[[web.BaseRequest, _BodyMeter], Awaitable[Any]]
    build: _Builder
    error: _ErrorShape


_OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _openai_error(status: int, message: str) -> bytes:
    default = ("server_error", "server_error") if status >= 500 else ("invalid_request_error", None)
    kind, code = _OPENAI_ERRORS.get(status, default)
    error = {"message": message, "type": kind, "param": None, "code": code}
    return _dumps({"error": error}).encode()


def _anthropic_error(status: int, message: str) -> bytes:
    default = "api_error" if status >= 500 else "invalid_request_error"
    kind = _ANTHROPIC_ERRORS.get(status, default)
    return _dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def _splice(head: Mapping[str, Any], tail: str) -> bytes:
    """Join per-request fields with a pre-serialised JSON object into one object."""
    return (_dumps(head)[:-1] + "," + tail[1:]).encode()


def _sse_data(obj: Any) -> bytes:
    return b"data: " + _dumps(obj).encode() + b"\n\n"


def _sse_event(kind: str, obj: Any) -> bytes:
    return f"event: {kind}\ndata: {_dumps(obj)}\n\n".encode()


def _model(payload: Mapping[str, Any]) -> str:
    model = payload.get("model")
    return model if isinstance(model, str) else DEFAULT_MODEL


def _deltas(count: int) -> list[str]:
    return [f"tok{index} " for index in range(count)]


def _wants_usage(payload: Mapping[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


_OPENAI_USAGE: dict[str, Any] = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
_CHAT_TAIL = _dumps(
    {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": MOCK_TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _OPENAI_USAGE,
    }
)
_COMPLETION_TAIL = _dumps(
    {
        "choices": [{"text": MOCK_TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": _OPENAI_USAGE,
    }
)


def _openai_head(
    ex: _Exchange, prefix: str, kind: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": ex.ids(prefix),
        "object": kind,
        "created": int(time.time()),
        "model": _model(payload),
    }


def _openai_stream(
    head: Mapping[str, Any], choices: Iterable[dict[str, Any]], usage: bool
) -> Iterator[bytes]:
    for choice in choices:
        yield _sse_data({**head, "choices": [choice]})
    if usage:
        yield _sse_data({**head, "choices": [], "usage": _OPENAI_USAGE})
    yield b"data: [DONE]\n\n"


def _chat(ex: _Exchange, payload: dict[str, Any]) -> _Reply | _Stream:
    if not payload.get("stream"):
        head = _openai_head(ex, "chatcmpl-", "chat.completion", payload)
        return _Reply(200, _splice(head, _CHAT_TAIL))
    head = _openai_head(ex, "chatcmpl-", "chat.completion.chunk", payload)
    blank: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": None}
    choices = [{**blank, "delta": {"role": "assistant", "content": ""}}]
    choices += [{**blank, "delta": {"content": text}} for text in _deltas(ex.controls.chunks)]
    choices.append({**blank, "delta": {}, "finish_reason": "stop"})
    return _Stream(_openai_stream(head, choices, _wants_usage(payload)))


def _completion(ex: _Exchange, payload: dict[str, Any]) -> _Reply | _Stream:
    head = _openai_head(ex, "cmpl-", "text_completion", payload)
    if not payload.get("stream"):
        return _Reply(200, _splice(head, _COMPLETION_TAIL))
    blank: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": None}
    choices = [{**blank, "text": text} for text in _deltas(ex.controls.chunks)]
    choices.append({**blank, "text": "", "finish_reason": "stop"})
    return _Stream(_openai_stream(head, choices, _wants_usage(payload)))


_RESPONSES_USAGE: dict[str, Any] = {
    "input_tokens": 11,
    "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 18,
}
_RESPONSE_DEFAULTS: dict[str, Any] = {
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "text": {"format": {"type": "text"}},
}


_Event = tuple[str, dict[str, Any]]


def _response_message(item_id: str, text: str | None) -> dict[str, Any]:
    """The output message item; ``text=None`` for the still-empty, in-progress item."""
    content = [] if text is None else [_output_text(text)]
    status = "in_progress" if text is None else "completed"
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(ex: _Exchange, payload: Mapping[str, Any], text: str | None) -> dict[str, Any]:
    """The response object; ``text=None`` for the in-progress snapshot without output."""
    done = text is not None
    return {
        "id": ex.ids("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if done else "in_progress",
        "model": _model(payload),
        "output": [_response_message(ex.ids("msg_"), text)] if done else [],
        "usage": _RESPONSES_USAGE if done else None,
        **_RESPONSE_DEFAULTS,
    }


def _responses(ex: _Exchange, payload: dict[str, Any]) -> _Reply | _Stream:
    if not payload.get("stream"):
        return _Reply(200, _dumps(_response(ex, payload, MOCK_TEXT)).encode())
    return _Stream(_numbered(_response_events(ex, payload)))


def _response_events(ex: _Exchange, payload: Mapping[str, Any]) -> Iterator[_Event]:
    deltas = _deltas(ex.controls.chunks)
    text = "".join(deltas)
    item_id = ex.ids("msg_")
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    started = _response(ex, payload, None)
    yield "response.created", {"response": started}
    yield "response.in_progress", {"response": started}
    yield (
        "response.output_item.added",
        {"output_index": 0, "item": _response_message(item_id, None)},
    )
    yield "response.content_part.added", {**where, "part": _output_text("")}
    for delta in deltas:
        yield "response.output_text.delta", {**where, "delta": delta, "logprobs": []}
    yield "response.output_text.done", {**where, "text": text, "logprobs": []}
    yield "response.content_part.done", {**where, "part": _output_text(text)}
    yield "response.output_item.done", {"output_index": 0, "item": _response_message(item_id, text)}
    yield "response.completed", {"response": _response(ex, payload, text)}


def _numbered(events: Iterable[_Event]) -> Iterator[bytes]:
    for sequence, (kind, body) in enumerate(events):
        yield _sse_event(kind, {"type": kind, "sequence_number": sequence, **body})


_ANTHROPIC_USAGE: dict[str, Any] = {
    "input_tokens": 11,
    "output_tokens": 7,
    "cache_read_input_tokens": 3,
    "cache_creation_input_tokens": 0,
}
_MESSAGE_TAIL = _dumps(
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": MOCK_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _ANTHROPIC_USAGE,
    }
)


def _messages(ex: _Exchange, payload: dict[str, Any]) -> _Reply | _Stream:
    head = {"id": ex.ids("msg_"), "model": _model(payload)}
    if not payload.get("stream"):
        return _Reply(200, _splice(head, _MESSAGE_TAIL))
    return _Stream(_message_events(head, ex.controls.chunks))


def _message_events(head: Mapping[str, Any], chunks: int) -> Iterator[bytes]:
    message = {
        **head,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**_ANTHROPIC_USAGE, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        for text in _deltas(chunks)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 7},
        },
        {"type": "message_stop"},
    ]
    for event in events:
        yield _sse_event(event["type"], event)


def _embedding_count(inputs: Any) -> int:
    if isinstance(inputs, list) and inputs and not all(isinstance(i, int) for i in inputs):
        return len(inputs)
    return 1


def _embeddings(ex: _Exchange, payload: dict[str, Any]) -> _Reply:
    count = _embedding_count(payload.get("input"))
    as_base64 = payload.get("encoding_format") == "base64"
    data = []
    for index in range(count):
        vector: Any = embedding_vector(index)
        if as_base64:
            vector = base64.b64encode(struct.pack("<8f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": 4 * count, "total_tokens": 4 * count}
    body = {"object": "list", "data": data, "model": _model(payload), "usage": usage}
    return _Reply(200, _dumps(body).encode())


# Words that make the mock moderation endpoint flag a category (score 0.9; others 0.01).
MODERATION_TRIGGERS = {"hate": "hateful", "violence": "violent", "harassment": "harass"}


def _moderations(ex: _Exchange, payload: dict[str, Any]) -> _Reply:
    inputs = payload.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    results = []
    for text in texts:
        lowered = str(text).lower()
        flags = {c: word in lowered for c, word in MODERATION_TRIGGERS.items()}
        scores = {c: 0.9 if hit else 0.01 for c, hit in flags.items()}
        results.append(
            {"flagged": any(flags.values()), "categories": flags, "category_scores": scores}
        )
    body = {"id": ex.ids("modr-"), "model": _model(payload), "results": results}
    return _Reply(200, _dumps(body).encode())


def _transcription(ex: _Exchange, upload: _Upload | None) -> _Reply:
    if upload is None:
        return _Reply(400, _openai_error(400, "expected a multipart body with a 'file' part"))
    body = {"text": "transcribed", "received_bytes": upload.size, "received_sha256": upload.sha256}
    return _Reply(200, _dumps(body).encode())


_MODELS_BODY = _dumps(
    {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "openai"}
            for model in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "whisper-1")
        ],
    }
).encode()


def _models(ex: _Exchange, payload: None) -> _Reply:
    return _Reply(200, _MODELS_BODY)


def _binary(ex: _Exchange, payload: None) -> _Reply | _Stream:
    size = ex.request.path.rpartition("/")[2]
    if not size.isdigit():
        return _Reply(400, _openai_error(400, f"invalid binary size: {size!r}"))
    n = int(size)
    return _Stream(
        _binary_chunks(n),
        content_type="application/octet-stream",
        length=n,
        headers={"x-mock-sha256": binary_sha256(n)},
    )


def _echo(ex: _Exchange, payload: None) -> _Reply:
    seen = ex.snapshot(complete=True)
    body = {
        "method": seen.method,
        "path": seen.path,
        "query": seen.query,
        "headers": seen.headers,
        "body_size": seen.body_size,
        "body_sha256": seen.body_sha256,
    }
    return _Reply(200, _dumps(body).encode())


def _not_found(ex: _Exchange, payload: None) -> _Reply:
    message = f"no mock endpoint for {ex.request.method} {ex.request.path}"
    return _Reply(404, _openai_error(404, message))


_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/v1/chat/completions"): _Route(_read_json, _chat, _openai_error),
    ("POST", "/v1/completions"): _Route(_read_json, _completion, _openai_error),
    ("POST", "/v1/responses"): _Route(_read_json, _responses, _openai_error),
    ("POST", "/v1/embeddings"): _Route(_read_json, _embeddings, _openai_error),
    ("POST", "/v1/audio/transcriptions"): _Route(_read_upload, _transcription, _openai_error),
    ("POST", "/v1/messages"): _Route(_read_json, _messages, _anthropic_error),
    ("POST", "/v1/moderations"): _Route(_read_json, _moderations, _openai_error),
    ("GET", "/v1/models"): _Route(_drain, _models, _openai_error),
}
_ECHO = _Route(_drain, _echo, _openai_error)
_BINARY = _Route(_drain, _binary, _openai_error)
_NOT_FOUND = _Route(_drain, _not_found, _openai_error)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _resolve(method: str, path: str) -> _Route:
    route = _ROUTES.get((method, path))
    if route is not None:
        return route
    if _under(path, "/echo") or _under(path, "/v1/echo"):
        return _ECHO
    if method == "GET" and path.startswith(("/binary/", "/v1/binary/")):
        return _BINARY
    return _NOT_FOUND


class MockUpstream:
    """The mock server: ``start()`` it in a background thread, or use it as a context manager.

    With ``record=False`` requests are not kept (for long benchmark runs).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self.requests: list[ReceivedRequest] = []
        self._record = record
        self._tags: dict[str, TagEvents] = {}
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> str:
        """Serve from a daemon thread with its own event loop; return once listening."""
        if self._thread is not None:
            raise RuntimeError("mock upstream already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="mock-upstream", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result()
        except BaseException:
            self._halt()
            raise
        return self.url

    def stop(self) -> None:
        """Stop serving; open connections are closed and their handlers cancelled."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
            self._halt()

    def _halt(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._thread = self._loop = None

    def clear(self) -> None:
        """Forget recorded requests and tags."""
        with self._changed:
            self.requests.clear()
            self._tags.clear()

    def wait_for(
        self, predicate: Callable[[ReceivedRequest], bool], timeout: float = 5.0
    ) -> ReceivedRequest:
        """The first recorded request matching ``predicate``, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for request in self.requests:
                    if predicate(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching request within {timeout} s")
                self._changed.wait(remaining)

    def tag(self, name: str) -> TagEvents:
        """Events for requests sent with ``x-mock-tag: <name>``."""
        with self._changed:
            events = self._tags.get(name)
            if events is None:
                events = self._tags[name] = TagEvents()
            return events

    async def _open(self) -> None:
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=4096)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"

    async def _close(self) -> None:
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        self._stopping = False

    def _remember(self, ex: _Exchange, complete: bool) -> None:
        ex.recorded = True
        if self._record:
            received = ex.snapshot(complete)
            with self._changed:
                self.requests.append(received)
                self._changed.notify_all()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        tag = request.headers.get("x-mock-tag")
        ex = _Exchange(request, next(self._ids), _UNTAGGED if tag is None else self.tag(tag))
        route = _resolve(request.method, request.path)
        try:
            payload = await route.consume(request, ex.meter)
            self._remember(ex, complete=True)
            ex.events._mark_received()
            return await self._respond(ex, route, payload)
        except asyncio.CancelledError:
            self._lost(ex)
            raise
        except ConnectionError:
            self._lost(ex)
            return web.Response()

    def _lost(self, ex: _Exchange) -> None:
        """Account for a connection that went away under a running handler."""
        if not ex.recorded:
            self._remember(ex, complete=False)
        if not ex.aborted and not self._stopping:
            ex.events._mark_disconnected()

    async def _respond(self, ex: _Exchange, route: _Route, payload: Any) -> web.StreamResponse:
        try:
            ex.controls = controls = _parse_controls(ex.request)
        except _ControlError as exc:
            return await self._send(ex, _Reply(400, route.error(400, str(exc))))
        if controls.delay:
            await asyncio.sleep(controls.delay)
        if controls.reset:
            ex.abort()
            return web.Response()
        if controls.status is None:
            reply = route.build(ex, payload)
        elif controls.error_body is not None:
            body = controls.error_body.encode("utf-8", "surrogateescape")
            reply = _Reply(controls.status, body)
        else:
            reply = _Reply(
                controls.status, route.error(controls.status, f"mock error {controls.status}")
            )
        if isinstance(reply, _Stream):
            response = await self._stream(ex, reply)
        else:
            response = await self._send(ex, reply)
        if not ex.aborted:
            ex.events._mark_finished()
        return response

    async def _send(self, ex: _Exchange, reply: _Reply) -> web.StreamResponse:
        headers = {"Content-Type": reply.content_type, "x-mock-request-id": str(ex.request_id)}
        body = reply.body
        if ex.controls.gzip:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        response = web.Response(status=reply.status, body=body, headers=headers)
        await response.prepare(ex.request)
        await response.write_eof()
        ex.events._mark_chunk()
        return response

    async def _stream(self, ex: _Exchange, stream: _Stream) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": stream.content_type,
                "Cache-Control": "no-cache",
                "x-mock-request-id": str(ex.request_id),
                **stream.headers,
            }
        )
        if stream.length is not None:
            response.content_length = stream.length
        await response.prepare(ex.request)
        delay = ex.controls.chunk_delay
        sent = 0
        for event in stream.events:
            if await self._interrupted(ex, sent):
                return response
            if sent and delay:
                await asyncio.sleep(delay)
            await response.write(event)
            ex.events._mark_chunk()
            sent += 1
        if not await self._interrupted(ex, sent):
            await response.write_eof()
        return response

    async def _interrupted(self, ex: _Exchange, sent: int) -> bool:
        """Apply ``x-mock-cut-after`` / ``x-mock-stall-after`` once ``sent`` events are out."""
        if sent == ex.controls.cut_after:
            ex.abort()
            return True
        if sent == ex.controls.stall_after:
            await asyncio.sleep(_STALL_SECONDS)
            ex.abort()
            return True
        return False


async def _serve(host: str, port: int) -> None:
    upstream = MockUpstream(host, port, record=False)
    await upstream._open()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"listening on {upstream.url}", flush=True)
    try:
        await stopping.wait()
    finally:
        await upstream._close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.upstream", description="Serve the mock AI-provider upstream."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
