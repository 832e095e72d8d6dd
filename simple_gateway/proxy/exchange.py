"""One exchange in flight: its identity, its timings, and how it may be cut short.

Several threads touch an exchange: the request thread that runs it, the disconnect
watcher that may notice the client leave, and the shutdown timer that may interrupt
it. They communicate only through `stop_reason` and the upstream connection's
`abort()`, which wakes whatever the request thread is blocked on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from simple_gateway.proxy.upstream import UpstreamConnection
from simple_gateway.records.model import Outcome


@dataclass(eq=False)
class Exchange:
    id: str
    request_id: str
    started_at: float = field(default_factory=time.time)
    first_byte_at: float | None = None
    stop_reason: Outcome | None = None  # set by another thread to cut the exchange short
    upstream: UpstreamConnection | None = None

    def stop(self, reason: Outcome) -> None:
        """Cut the exchange short from any thread (client gone, worker stopping)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.upstream is not None:
            self.upstream.abort()

    def client_gone(self) -> None:
        self.stop(Outcome.CLIENT_DISCONNECTED)


class LiveExchanges:
    """The exchanges a worker is running, so that a stopping worker can interrupt them."""

    def __init__(self) -> None:
        self._live: set[Exchange] = set()
        self._lock = threading.Lock()

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._live.add(exchange)

    def discard(self, exchange: Exchange) -> None:
        with self._lock:
            self._live.discard(exchange)

    def __len__(self) -> int:
        return len(self._live)

    def interrupt_all(self) -> int:
        """Stop every live exchange as interrupted by shutdown; returns how many."""
        with self._lock:
            live = list(self._live)
        for exchange in live:
            exchange.stop(Outcome.INTERRUPTED)
        return len(live)
