"""Connections to providers: a small keep-alive pool over the standard library's HTTP client.

design: the forwarder holds the connection object for the whole exchange, so another
thread (the disconnect watcher, the shutdown timer) can shut its socket down and wake
a read that is blocked waiting for the provider. The client is `http.client`, the
HTTP/1.1 implementation urllib3 and requests are built on: its `read1` returns body
bytes as they arrive, de-chunked but never content-decoded, which is exactly what a
verbatim proxy relays. Going through urllib3's pool and response wrapper would add
per-request work the profile showed to matter (URL parsing, retry bookkeeping, two
socket timeout resets, a second header dictionary) and nothing the gateway uses.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from simple_gateway.proxy.transport import DIRECT, Transport

Origin = tuple[str, str, int]
Response = http.client.HTTPResponse

# A connection idle for less than this is reused without asking the kernel whether the
# provider closed it meanwhile; if it did, the send fails at once and is retried.
_FRESH_SECONDS = 1.0


class ConnectFailed(Exception):
    """The TCP (or TLS) connection to the provider could not be made."""

    def __init__(self, cause: BaseException, timed_out: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.timed_out = timed_out


@dataclass(frozen=True)
class Target:
    origin: Origin
    path: str  # path and query, as sent on the request line
    transport: Transport = DIRECT
    connect_timeout: float | None = None  # None: the pool's default
    read_timeout: float | None = None


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

    def __init__(
        self,
        origin: Origin,
        connect_timeout: float,
        read_timeout: float,
        transport: Transport = DIRECT,
    ) -> None:
        scheme, host, port = origin
        self.origin = origin
        self.transport = transport
        self.http: http.client.HTTPConnection
        proxy = transport.proxy
        # Through a proxy, plain http sends absolute-form request lines to the proxy,
        # while https opens a CONNECT tunnel and verifies the origin's certificate.
        self._absolute_prefix = f"http://{host}:{port}" if proxy and scheme != "https" else ""
        self._proxy_authorization = proxy.authorization if proxy and self._absolute_prefix else None
        address = (proxy.host, proxy.port) if proxy else (host, port)
        if scheme == "https":
            self.http = http.client.HTTPSConnection(
                *address, timeout=connect_timeout, context=transport.tls_context()
            )
            if proxy is not None:
                auth = proxy.authorization
                self.http.set_tunnel(host, port, {"Proxy-Authorization": auth} if auth else None)
        else:
            self.http = http.client.HTTPConnection(*address, timeout=connect_timeout)
        self.read_timeout = read_timeout
        self.reused = False
        self.idle_since = 0.0
        self._aborted = False

    def connect(self) -> None:
        if self.http.sock is not None:
            return
        try:
            self.http.connect()
        except TimeoutError as exc:
            raise ConnectFailed(exc, timed_out=True) from exc
        except OSError as exc:
            raise ConnectFailed(exc, timed_out=False) from exc
        sock: socket.socket = self.http.sock  # type: ignore[assignment]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.read_timeout)  # from now on: the provider's idle time

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | Iterable[bytes] | None,
        chunked: bool = False,
    ) -> Response:
        """Send the request and wait for the response head; the body is left unread."""
        self.connect()
        if self._aborted:  # stopped while connecting: the socket was not there to shut down
            raise ConnectionAbortedError("the exchange was stopped")
        conn = self.http
        conn.putrequest(method, self._absolute_prefix + path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if self._proxy_authorization:
            conn.putheader("Proxy-Authorization", self._proxy_authorization)
        conn.endheaders(message_body=body, encode_chunked=chunked)
        return conn.getresponse()

    def set_read_timeout(self, seconds: float) -> None:
        if seconds != self.read_timeout:
            self.read_timeout = seconds
            if self.http.sock is not None:
                self.http.sock.settimeout(seconds)

    def use_timeout(self, seconds: float) -> None:
        """Bound this exchange's connect and waits by `seconds` (a deployment's timeout)."""
        self.http.timeout = min(self.http.timeout or seconds, seconds)
        self.read_timeout = seconds
        if self.http.sock is not None:
            self.http.sock.settimeout(seconds)

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

    def is_reusable(self, now: float) -> bool:
        sock = self.http.sock
        if sock is None or self._aborted:
            return False
        if now - self.idle_since < _FRESH_SECONDS:
            return True
        # Readable while idle means the provider closed it (or sent junk): not reusable.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)


class UpstreamPool:
    """Idle keep-alive connections per origin; the newest idle one is reused first."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_idle: int = 256) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[Origin, Transport], deque[UpstreamConnection]] = {}
        self._lock = threading.Lock()

    def acquire(self, target: Target) -> UpstreamConnection:
        """A connection to the target's origin over its transport, with its timeouts."""
        now = time.monotonic()
        read_timeout = target.read_timeout or self.read_timeout
        with self._lock:
            idle = self._idle.get((target.origin, target.transport))
            while idle:
                conn = idle.pop()
                if conn.is_reusable(now):
                    conn.reused = True
                    conn.set_read_timeout(read_timeout)
                    return conn
                conn.close()
        return UpstreamConnection(
            target.origin,
            target.connect_timeout or self.connect_timeout,
            read_timeout,
            target.transport,
        )

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """Return a connection whose response was read to the end, or close it."""
        if not reusable or conn.aborted or conn.http.sock is None:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        if conn.read_timeout != self.read_timeout:  # a deployment's own timeout: restore
            conn.read_timeout = self.read_timeout
            conn.http.timeout = self.connect_timeout
            conn.http.sock.settimeout(self.read_timeout)
        with self._lock:
            idle = self._idle.setdefault((conn.origin, conn.transport), deque())
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
