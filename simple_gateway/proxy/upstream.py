"""Connections to providers: a small keep-alive pool over urllib3's HTTP connections.

design: the forwarder holds the connection object for the whole exchange, so another
thread (the disconnect watcher, the shutdown timer) can shut its socket down and wake
a read that is blocked waiting for the provider. urllib3's PoolManager hides the
connection behind `urlopen` and adds per-request work (URL parsing, retry and proxy
logic) the gateway does not need; it keeps urllib3's HTTP/1.1 client and its raw
response reader (`read1(decode_content=False)`), and owns only the idle list.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import HTTPResponse
from urllib3.util import SKIP_HEADER
from urllib3.util.wait import wait_for_read

Origin = tuple[str, str, int]


@dataclass(frozen=True)
class Target:
    origin: Origin
    path: str  # path and query, as sent on the request line


def split_url(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target((scheme, parts.hostname or "", port), path)


class UpstreamConnection:
    """One connection to an origin, checked out of the pool for one exchange."""

    def __init__(self, origin: Origin, connect_timeout: float, read_timeout: float) -> None:
        scheme, host, port = origin
        cls = HTTPSConnection if scheme == "https" else HTTPConnection
        self.origin = origin
        self.http = cls(host, port, timeout=connect_timeout)
        self.read_timeout = read_timeout
        self.reused = False
        self._aborted = False

    def connect(self) -> None:
        if self.http.sock is None:
            self.http.connect()
            assert self.http.sock is not None
            self.http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.http.timeout = self.read_timeout

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | Iterable[bytes] | None,
    ) -> HTTPResponse:
        """Send the request and wait for the response head; the body is left unread."""
        self.connect()
        if self._aborted:  # stopped while connecting: the socket was not there to shut down
            raise ConnectionAbortedError("the exchange was stopped")
        outgoing = dict(headers)
        for name in ("User-Agent", "Accept-Encoding"):
            if name not in outgoing:
                outgoing[name] = SKIP_HEADER  # send only what the client sent
        self.http.request(
            method,
            path,
            body=body,
            headers=outgoing,
            preload_content=False,
            decode_content=False,
            enforce_content_length=True,
        )
        return self.http.getresponse()

    def abort(self) -> None:
        """Shut the socket down from any thread, waking a blocked send or read."""
        self._aborted = True
        sock = self.http.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def aborted(self) -> bool:
        return self._aborted

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.http.close()

    def is_reusable(self) -> bool:
        sock = self.http.sock
        # Readable while idle means the provider closed it (or sent junk): not reusable.
        return sock is not None and not self._aborted and not wait_for_read(sock, timeout=0.0)


class UpstreamPool:
    """Idle keep-alive connections per origin; the newest idle one is reused first."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_idle: int = 512) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self._idle: dict[Origin, deque[UpstreamConnection]] = {}
        self._lock = threading.Lock()

    def acquire(self, origin: Origin) -> UpstreamConnection:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.is_reusable():
                    conn.reused = True
                    return conn
                conn.close()
        return UpstreamConnection(origin, self.connect_timeout, self.read_timeout)

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """Return a connection whose response was read to the end, or close it."""
        if not reusable or conn.aborted or conn.http.sock is None:
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(conn.origin, deque())
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
            self._idle.clear()
