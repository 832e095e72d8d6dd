"""A TCP forwarder that can make a database unreachable on demand.

design: one asyncio loop in a daemon thread accepts connections on 127.0.0.1 and pipes
each to the target. `down()` aborts every forwarded pair (both sides, so the client sees
its connection break) and from then on resets each new connection as soon as it is
accepted, which a client sees as the server going away during the handshake; `up()`
forwards again. The listening socket stays bound throughout, so the port never changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading

_BUFFER = 64 * 1024


class TcpForwarder:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._up = True
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-forwarder")
        self._thread.daemon = True
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TcpForwarder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> int:
        self._thread.start()
        self._call(self._open())
        return self.port

    def down(self) -> None:
        self._call(self._set(up=False))

    def up(self) -> None:
        self._call(self._set(up=True))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        await self._set(up=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _set(self, *, up: bool) -> None:
        self._up = up
        if not up:
            for pair in list(self._pairs):
                for writer in pair:
                    _reset(writer)
            self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.refused += 1
            _reset(writer)
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for side in pair:
                side.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN: the peer sees a broken connection at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
