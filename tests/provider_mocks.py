"""Mock upstreams in the formats of Gemini, Azure OpenAI and Replicate, plus a CONNECT proxy.

Written from the providers' public API references:

- Gemini: `POST /{v1beta|v1}/models/{model}:generateContent` answers a
  `GenerateContentResponse` (`candidates[].content.parts[].text`, `usageMetadata`,
  `modelVersion`); `:streamGenerateContent?alt=sse` sends the same object in parts as
  `data:` events, the last one with the final `usageMetadata`.
- Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions?api-version=...`
  answers a chat completion; without `api-version` it answers 404 as Azure does.
- Replicate: `POST /v1/predictions` and `POST /v1/models/{owner}/{name}/predictions`
  answer a finished prediction (as with `Prefer: wait`) whose `output` is a list of URLs
  on the mock's own delivery path `/delivery/...`, which serves PNG bytes.
- `/echo`: answers with the request it saw (for transport tests).

`ProviderMock(tls=ssl_context)` serves HTTPS. `ConnectProxy` is a small HTTP proxy
(CONNECT tunnels and absolute-form requests) that records what it was asked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import select
import socket
import ssl
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

GEMINI_USAGE = {
    "promptTokenCount": 9,
    "candidatesTokenCount": 4,
    "totalTokenCount": 15,
    "thoughtsTokenCount": 2,
}
AZURE_MODEL = "gpt-4o-2024-08-06"


def png_bytes(seed: int) -> bytes:
    """A valid 4x4 PNG whose pixels depend on `seed`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    rows = b"".join(b"\x00" + bytes([seed % 256, 0, 0] * 4) for _ in range(4))
    header = (4).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class ProviderMock:
    """Serves the provider formats above from a background thread."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.tls = tls
        self.host = host
        self.url = ""
        self.requests: list[Seen] = []
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_post("/{version:v1beta|v1}/models/{action}", self._gemini)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat)
        app.router.add_post("/v1/predictions", self._prediction)
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._prediction)
        app.router.add_get("/delivery/{name}", self._delivery)
        app.router.add_route("*", "/echo{rest:.*}", self._echo)
        app.router.add_route("*", "/v1/echo{rest:.*}", self._echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0, ssl_context=self.tls)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{self.host}:{port}"

    async def _close(self) -> None:
        if self._runner is not None:
            server = self._runner.server
            for handler in list(server.connections if server else ()):
                if handler.transport is not None:  # no TLS close handshake to wait for
                    handler.transport.abort()
            await self._runner.cleanup()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for _ in range(3):  # let closed transports run their connection_lost callbacks
            await asyncio.sleep(0)

    async def _seen(self, request: web.Request) -> Seen:
        body = await request.read()
        seen = Seen(
            request.method,
            request.path,
            request.query_string,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        with self._changed:
            self.requests.append(seen)
            self._changed.notify_all()
        return seen

    def last(self, path_start: str) -> Seen:
        with self._changed:
            for seen in reversed(self.requests):
                if seen.path.startswith(path_start):
                    return seen
        raise LookupError(path_start)

    # -- Gemini -------------------------------------------------------------------------

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        await self._seen(request)
        model, _, method = request.match_info["action"].partition(":")
        if method == "generateContent":
            return web.json_response(_gemini_response(model, ["Hello ", "from ", "Gemini"]))
        if method == "streamGenerateContent" and request.query.get("alt") == "sse":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            parts = ["Hello ", "from ", "Gemini"]
            for index, part in enumerate(parts):
                chunk = _gemini_response(model, [part], final=index == len(parts) - 1)
                await response.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            await response.write_eof()
            return response
        error = {"code": 404, "message": f"unknown method {method}", "status": "NOT_FOUND"}
        return web.json_response({"error": error}, status=404)

    # -- Azure OpenAI ---------------------------------------------------------------------

    async def _azure_chat(self, request: web.Request) -> web.Response:
        seen = await self._seen(request)
        if "api-version" not in request.query:
            error = {"code": "404", "message": "Resource not found"}
            return web.json_response({"error": error}, status=404)
        payload = json.loads(seen.body or b"{}")
        completion = {
            "id": "chatcmpl-azure-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": AZURE_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"Hello from {request.match_info['deployment']}",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
        if payload.get("stream"):
            raise web.HTTPBadRequest(text="streaming is not mocked for Azure")
        return web.json_response(completion)

    # -- Replicate ------------------------------------------------------------------------

    async def _prediction(self, request: web.Request) -> web.Response:
        seen = await self._seen(request)
        payload = json.loads(seen.body or b"{}")
        base = f"{self.url}/delivery"
        outputs = [f"{base}/out-{i}.png" for i in range(int(payload.get("outputs", 1)))]
        outputs += payload.get("extra_outputs", [])
        owner = request.match_info.get("owner")
        model = f"{owner}/{request.match_info['name']}" if owner else "mock/image-model"
        prediction = {
            "id": "pred-0001",
            "model": model,
            "version": "v1",
            "input": payload.get("input", {}),
            "logs": "",
            "output": outputs,
            "error": None,
            "status": "succeeded",
            "created_at": "2026-12-01T00:00:00Z",
            "urls": {
                "get": f"{self.url}/v1/predictions/pred-0001",
                "cancel": f"{self.url}/v1/predictions/pred-0001/cancel",
            },
            "metrics": {"predict_time": 1.5},
        }
        return web.json_response(prediction, status=201)

    async def _delivery(self, request: web.Request) -> web.Response:
        await self._seen(request)
        seed = int(hashlib.sha256(request.match_info["name"].encode()).hexdigest()[:2], 16)
        return web.Response(body=png_bytes(seed), content_type="image/png")

    # -- transport tests -------------------------------------------------------------------

    async def _echo(self, request: web.Request) -> web.Response:
        seen = await self._seen(request)
        return web.json_response({"path": seen.path, "query": seen.query, "headers": seen.headers})


def _gemini_response(model: str, parts: list[str], final: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "".join(parts)}]},
                "index": 0,
                **({"finishReason": "STOP"} if final else {}),
            }
        ],
        "modelVersion": model,
        "responseId": "resp-gemini-1",
    }
    if final:
        response["usageMetadata"] = GEMINI_USAGE
    else:
        response["usageMetadata"] = {"promptTokenCount": 9, "totalTokenCount": 9}
    return response


class ConnectProxy:
    """A minimal HTTP proxy: CONNECT tunnels and absolute-form requests, one thread each.

    `requests` records (method, target, Proxy-Authorization) per connection; with
    `credentials` set, requests without the matching Basic credentials get 407.
    """

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.requests: list[tuple[str, str, str | None]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._server.close()
        self._thread.join(5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._open.add(sock)
        return sock

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            self._relay(self._track(client))
        except OSError:
            pass  # a peer went away: the exchange is over
        finally:
            client.close()

    def _relay(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        auth = next((v for k, v in headers.items() if k.lower() == "proxy-authorization"), None)
        self.requests.append((method, target, auth))
        if self.credentials and auth != _basic(self.credentials):
            client.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._track(socket.create_connection((host, int(port))))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream.sendall(rest)
        else:
            without_scheme = target.split("://", 1)[1]
            authority, _, path = without_scheme.partition("/")
            host, _, port = authority.rpartition(":")
            upstream = self._track(socket.create_connection((host, int(port or 80))))
            kept = [line for line in lines[1:] if not line.lower().startswith("proxy-")]
            request_line = f"{method} /{path} {version}"
            upstream.sendall(
                "\r\n".join([request_line, *kept]).encode("latin-1") + b"\r\n\r\n" + rest
            )
        with upstream:
            _pipe(client, upstream)


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 30)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)
