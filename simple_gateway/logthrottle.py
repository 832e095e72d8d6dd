"""Repeated errors of one kind, logged once per interval with a count.

A full disk or a read-only folder fails every body of every exchange the same way; one
line per failure would bury the log (a probe saw a thousand tracebacks in half a minute).
`ThrottledLog` writes the first error of a kind at once, counts the repeats quietly, and
writes one line with the count when the interval has passed and the error comes again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    """One line per kind of error per interval, saying how many were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (last written, repeats since)

    def error(self, kind: str, message: str, *args: object) -> None:
        now = self._clock()
        with self._lock:
            last, repeats = self._kinds.get(kind, (float("-inf"), 0))
            if now - last < self._interval:
                self._kinds[kind] = (last, repeats + 1)
                return
            self._kinds[kind] = (now, 0)
        if repeats:
            message += " (and %d more like this in the last %.0fs)"
            args = (*args, repeats, now - last)
        self._log.error(message, *args)
