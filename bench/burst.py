"""A lean SSE mock and a lean burst client, so the burst measures the gateway, not them.

`python -m bench.burst mock --port N` serves every POST with an OpenAI-style chat stream
(`--chunks` events, `--delay-ms` apart, the first one at once) on keep-alive connections.
`python -m bench.burst client --url U --count N` opens N connections at once, sends one
streaming chat request on each and prints one JSON object: per stream, the time to first
token (connect start to the first bytes holding `data:`), whether it ended with
`data: [DONE]`, and an error if any.

Both are asyncio protocols over raw sockets, with none of aiohttp's per-request work: a
burst of a thousand costs each of them a few tens of milliseconds of CPU, so the "direct"
row of the burst is close to what the network stack allows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

from bench.procs import raise_nofile

_DONE = b"data: [DONE]"
_HEAD_END = b"\r\n\r\n"


# -- the mock ---------------------------------------------------------------------------------


def _event(index: int) -> bytes:
    payload = {
        "id": "chatcmpl-burst",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": f"tok{index} "}}],
    }
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_LAST = b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE + b"\n\n"), _DONE + b"\n\n")


class MockProtocol(asyncio.Protocol):
    def __init__(self, chunks: int, delay: float) -> None:
        self.chunks, self.delay = chunks, delay
        self.buffer = b""
        self.transport: Any = None
        self.busy = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next_request()

    def _next_request(self) -> None:
        if self.busy:
            return
        end = self.buffer.find(_HEAD_END)
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        total = end + len(_HEAD_END) + length
        if len(self.buffer) < total:
            return
        self.buffer = self.buffer[total:]
        self.busy = True
        self.transport.write(_RESPONSE_HEAD + _event(0))
        asyncio.get_running_loop().call_later(self.delay, self._send, 1)

    def _send(self, index: int) -> None:
        if self.transport.is_closing():
            return
        if index < self.chunks:
            self.transport.write(_event(index))
            asyncio.get_running_loop().call_later(self.delay, self._send, index + 1)
            return
        self.transport.write(_LAST)
        self.busy = False
        self._next_request()


async def serve(port: int, chunks: int, delay_ms: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(chunks, delay_ms / 1000), "127.0.0.1", port, backlog=4096
    )
    print(f"burst mock listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


# -- the client -------------------------------------------------------------------------------


class StreamProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, started: float, finished: asyncio.Future[None]) -> None:
        self.request, self.started, self.finished = request, started, finished
        self.ttft_ms: float | None = None
        self.done = False
        self.error: str | None = None
        self.tail = b""
        self.status_checked = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        seen = self.tail + data
        if not self.status_checked:
            self.status_checked = True
            if not seen.startswith(b"HTTP/1.1 200"):
                self._end(f"status {seen[:12].decode(errors='replace')}")
                return
        if self.ttft_ms is None and b"data:" in seen:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000
        if _DONE in seen:
            self.done = True
            self._end(None)
            return
        self.tail = seen[-16:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None if self.done else "closed before [DONE]")

    def _end(self, error: str | None) -> None:
        if self.finished.done():
            return
        self.error = error
        self.transport.close()
        self.finished.set_result(None)


async def _one(host: str, port: int, request: bytes, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    started = time.perf_counter()
    protocol = StreamProtocol(request, started, finished)
    try:
        await asyncio.wait_for(
            loop.create_connection(lambda: protocol, host, port), timeout=timeout
        )
        await asyncio.wait_for(finished, timeout=timeout)
    except (TimeoutError, OSError) as exc:
        protocol.error = protocol.error or type(exc).__name__
    return {
        "ttft_ms": protocol.ttft_ms,
        "done": protocol.done,
        "error": protocol.error,
        "total_ms": (time.perf_counter() - started) * 1000,
    }


async def burst(url: str, count: int, timeout: float) -> dict[str, Any]:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench-burst\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    started = time.perf_counter()
    streams = await asyncio.gather(*(_one(host, int(port), request, timeout) for _ in range(count)))
    return {"streams": streams, "elapsed_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mock = sub.add_parser("mock")
    mock.add_argument("--port", type=int, required=True)
    mock.add_argument("--chunks", type=int, default=5)
    mock.add_argument("--delay-ms", type=int, default=100)
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    client.add_argument("--count", type=int, default=1000)
    client.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    raise_nofile()
    if args.command == "mock":
        asyncio.run(serve(args.port, args.chunks, args.delay_ms))
    else:
        print(json.dumps(asyncio.run(burst(args.url, args.count, args.timeout))))


if __name__ == "__main__":
    main()
