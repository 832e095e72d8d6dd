"""Weighted order of an alias's deployments, and the cooldowns that take failing ones out."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from simple_gateway.routing.config import Deployment


def weighted_order(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    """All deployments in a random order where each comes first with probability w / sum(w).

    Weighted sampling without replacement (Efraimidis and Spirakis): each gets the key
    u ** (1 / w) for a uniform u, and the largest key goes first.
    """
    keyed = [(rng.random() ** (1.0 / d.weight), d) for d in deployments]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [d for _, d in keyed]


class Cooldowns:
    """Deployments taken out of rotation until a moment passes; shared by a worker's threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def cool(self, deployment: Deployment, seconds: float) -> bool:
        """Take a deployment out for `seconds`; True when it was not cooling already."""
        if seconds <= 0:
            return False
        now = self._clock()
        with self._lock:
            fresh = self._until.get(deployment.name, 0.0) <= now
            self._until[deployment.name] = now + seconds
        return fresh

    def cooling(self, deployment: Deployment) -> bool:
        until = self._until.get(deployment.name)
        if until is None:
            return False
        if until <= self._clock():
            with self._lock:
                if self._until.get(deployment.name) == until:
                    del self._until[deployment.name]
            return False
        return True


def attempt_order(
    deployments: Sequence[Deployment],
    cooldowns: Cooldowns,
    rng: random.Random,
) -> list[Deployment]:
    """The order to try an alias's deployments in for one request.

    Healthy primaries in weighted order, then healthy fallbacks in weighted order, then
    whatever is cooling down (a last resort beats refusing the request).
    """
    healthy = [d for d in deployments if not cooldowns.cooling(d)]
    cooling = [d for d in deployments if cooldowns.cooling(d) and d not in healthy]
    primaries = weighted_order([d for d in healthy if not d.fallback], rng)
    fallbacks = weighted_order([d for d in healthy if d.fallback], rng)
    rest = weighted_order([d for d in cooling if not d.fallback], rng) + weighted_order(
        [d for d in cooling if d.fallback], rng
    )
    return primaries + fallbacks + rest
