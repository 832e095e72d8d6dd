"""Notices clients that hang up while their exchange is still running.

design: a request thread is usually blocked reading from the provider, so it cannot
see its client go away until its next write fails, which for a slow model can be
minutes. One watcher thread per worker polls the client sockets of exchanges that
have run longer than `grace` seconds (short ones finish before it matters, and cost
nothing: registering them would put two system calls on every request). When a
socket reports hang-up, or is readable with nothing to read (EOF), the exchange's
`on_disconnect` callback runs, which shuts the upstream socket down and so wakes the
blocked request thread. A socket readable with data (a pipelined request) is simply
no longer watched.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


@dataclass(eq=False)
class Watch:
    sock: socket.socket
    on_disconnect: Callable[[], None]
    since: float = field(default_factory=time.monotonic)
    fd: int = -1
    done: bool = False


class DisconnectWatcher:
    def __init__(self, grace: float = 0.1, interval: float = 0.05) -> None:
        self.grace = grace
        self.interval = interval
        self._pending: dict[int, Watch] = {}  # id(watch) -> watch, not yet polled
        self._polled: dict[int, Watch] = {}  # fd -> watch
        self._poll = select.poll()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="disconnect-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def watch(self, sock: socket.socket | None, on_disconnect: Callable[[], None]) -> Watch | None:
        """Start watching a client socket; cheap, called on every request."""
        if sock is None:
            return None
        entry = Watch(sock, on_disconnect)
        self._pending[id(entry)] = entry
        return entry

    def forget(self, entry: Watch | None) -> None:
        """Stop watching; must be called before the socket can be reused or closed."""
        if entry is None:
            return
        entry.done = True
        if self._pending.pop(id(entry), None) is not None:
            return
        with self._lock:  # the watcher may be registering it right now
            if entry.fd >= 0 and self._polled.get(entry.fd) is entry:
                del self._polled[entry.fd]
                self._poll.unregister(entry.fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._promote()
            try:
                events = self._poll.poll(self.interval * 1000)
            except OSError as exc:  # pragma: no cover - poll only fails on bad fds
                log.warning("disconnect watcher poll failed: %s", exc)
                continue
            for fd, mask in events:
                self._check(fd, mask)

    def _promote(self) -> None:
        """Move exchanges that outlived the grace period into the poll set."""
        now = time.monotonic()
        for key, entry in list(self._pending.items()):
            if now - entry.since < self.grace:
                continue
            with self._lock:
                if self._pending.pop(key, None) is None or entry.done:
                    continue
                try:
                    entry.fd = entry.sock.fileno()
                    self._poll.register(entry.fd, select.POLLIN | _HANGUP)
                except (OSError, ValueError):
                    continue
                self._polled[entry.fd] = entry

    def _check(self, fd: int, mask: int) -> None:
        with self._lock:
            entry = self._polled.get(fd)
            if entry is None or entry.done:
                return
            gone = bool(mask & _HANGUP) or _at_eof(entry.sock)
            del self._polled[fd]
            self._poll.unregister(fd)
        if gone:
            try:
                entry.on_disconnect()
            except Exception:
                log.exception("disconnect callback failed")


def _at_eof(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
