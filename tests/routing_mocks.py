"""Mock Anthropic, Gemini and OpenAI chat upstreams for the routing tests.

Written from the providers' public API references: Anthropic Messages (`POST /v1/messages`,
plain and streamed with `message_start`, `content_block_*`, `message_delta`,
`message_stop`), Gemini `generateContent`, `streamGenerateContent?alt=sse` and
`batchEmbedContents`, and OpenAI chat completions and embeddings. A request that
offers tools and carries no tool result yet is answered with a call of the first tool
(arguments `{"city": "Paris"}`); otherwise with a text naming the mock.

Each mock is its own server (one per deployment in a test), scripted through attributes:
`statuses` is a queue of error statuses to answer before answering normally, `delay`
holds every answer back, `retry_after` is sent with 429s, `chunk_delay` spaces stream
events, `cut_after` closes the connection in the middle of a stream. Every request is
recorded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

TOOL_ARGS = {"city": "Paris"}
USAGE_IN, USAGE_OUT, USAGE_CACHED = 21, 9, 4


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class ProviderMock:
    """One mock provider server; `name` appears in every text it answers."""

    name: str = "mock"
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    retry_after: str | None = None
    chunks: int = 3
    chunk_delay: float = 0.0  # seconds between stream events
    cut_after: int | None = None  # close the connection after this many stream events
    received: list[Seen] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def text(self) -> str:
        return f"Hello from {self.name}"

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1beta/models/{call}", self._gemini)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/openai/deployments/{name}/chat/completions", self._openai_chat)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> tuple[Any, web.Response | None]:
        body = await request.json()
        with self._lock:
            self.received.append(
                Seen(
                    request.method, request.path, request.query_string, dict(request.headers), body
                )
            )
            status = self.statuses.pop(0) if self.statuses else None
        if self.delay:
            await asyncio.sleep(self.delay)
        if status is None:
            return body, None
        headers = {"Retry-After": self.retry_after} if self.retry_after and status == 429 else {}
        error = {
            "type": "error",
            "error": {"type": "api_error", "message": f"{self.name} {status}"},
        }
        return body, web.json_response(error, status=status, headers=headers)

    # Anthropic Messages

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        call = _wants_tool(body, "anthropic")
        if not body.get("stream"):
            content: list[dict[str, Any]]
            if call:
                content = [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": call, "input": TOOL_ARGS},
                ]
            else:
                content = [{"type": "text", "text": self.text}]
            message = {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": "tool_use" if call else "end_turn",
                "stop_sequence": None,
                "usage": _anthropic_usage(USAGE_OUT),
            }
            return web.json_response(message)
        return await self._sse(request, self._anthropic_events(body, call))

    def _anthropic_events(self, body: Any, call: str | None) -> Iterator[bytes]:
        def event(obj: dict[str, Any]) -> bytes:
            return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()

        start = {
            "id": "msg_02",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _anthropic_usage(1),
        }
        yield event({"type": "message_start", "message": start})
        yield event({"type": "ping"})
        yield event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        for piece in _pieces(self.text, self.chunks):
            delta = {"type": "text_delta", "text": piece}
            yield event({"type": "content_block_delta", "index": 0, "delta": delta})
        yield event({"type": "content_block_stop", "index": 0})
        if call:
            block = {"type": "tool_use", "id": "toolu_02", "name": call, "input": {}}
            yield event({"type": "content_block_start", "index": 1, "content_block": block})
            args = json.dumps(TOOL_ARGS)
            for piece in (args[:5], args[5:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event({"type": "content_block_delta", "index": 1, "delta": delta})
            yield event({"type": "content_block_stop", "index": 1})
        stop = {"stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None}
        yield event({"type": "message_delta", "delta": stop, "usage": {"output_tokens": USAGE_OUT}})
        yield event({"type": "message_stop"})

    # Gemini

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        model, _, method = request.match_info["call"].partition(":")
        if method == "batchEmbedContents":
            embeddings = [
                {"values": [0.5, float(i), -0.25]} for i, _ in enumerate(body["requests"])
            ]
            return web.json_response({"embeddings": embeddings})
        call = _wants_tool(body, "gemini")
        if method == "generateContent":
            return web.json_response(self._gemini_response(model, call, self.text, "STOP"))
        chunks = [
            self._gemini_response(model, None, piece, None)
            for piece in _pieces(self.text, self.chunks)
        ]
        chunks.append(self._gemini_response(model, call, "", "STOP"))
        return await self._sse(request, (f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks))

    def _gemini_response(
        self, model: str, call: str | None, text: str, finish: str | None
    ) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        if call:
            parts.append({"functionCall": {"name": call, "args": TOOL_ARGS}})
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {
            "promptTokenCount": USAGE_IN,
            "candidatesTokenCount": USAGE_OUT if finish else 1,
            "totalTokenCount": USAGE_IN + USAGE_OUT,
            "cachedContentTokenCount": USAGE_CACHED,
        }
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": "gemini-resp-1",
        }

    # OpenAI

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        head = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": self.text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            reply = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return web.json_response(reply)

        def events() -> Iterator[bytes]:
            for piece in _pieces(self.text, self.chunks):
                choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                obj = {**head, "object": "chat.completion.chunk", "choices": [choice]}
                yield f"data: {json.dumps(obj)}\n\n".encode()
            choice = {"index": 0, "delta": {}, "finish_reason": "stop"}
            obj = {**head, "object": "chat.completion.chunk", "choices": [choice]}
            yield f"data: {json.dumps(obj)}\n\ndata: [DONE]\n\n".encode()

        return await self._sse(request, events())

    async def _openai_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
        usage = {"prompt_tokens": 2, "total_tokens": 2}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    async def _sse(self, request: web.Request, events: Iterator[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(events):
            if index == self.cut_after and request.transport is not None:
                request.transport.close()  # no terminating chunk: the body ends short
                return response
            if index and self.chunk_delay and _carries_content(event):
                await asyncio.sleep(self.chunk_delay)
            await response.write(event)
        await response.write_eof()
        return response


def _carries_content(event: bytes) -> bool:
    """Spaced by `chunk_delay`: Anthropic's framing events (message_start, ping, block starts
    and stops, message_delta, message_stop) follow at once, as Anthropic sends them."""
    return not event.startswith(b"event: ") or b"content_block_delta" in event


def _anthropic_usage(output: int) -> dict[str, int]:
    return {
        "input_tokens": USAGE_IN - USAGE_CACHED,
        "cache_read_input_tokens": USAGE_CACHED,
        "cache_creation_input_tokens": 0,
        "output_tokens": output,
    }


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _wants_tool(body: Any, kind: str) -> str | None:
    """The first tool's name when tools are offered and no tool result came back yet."""
    if kind == "anthropic":
        tools = body.get("tools") or []
        answered = any(
            isinstance(block, dict) and block.get("type") == "tool_result"
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
        )
        return str(tools[0]["name"]) if tools and not answered else None
    declarations = [d for tool in body.get("tools") or [] for d in tool["functionDeclarations"]]
    answered = any(
        "functionResponse" in part
        for content in body.get("contents", [])
        for part in content["parts"]
    )
    return str(declarations[0]["name"]) if declarations and not answered else None
