"""Bounded polling for state another process writes (a database row count, for instance)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for_count(
    read: Callable[[], int], expected: int, timeout: float, interval: float = 0.1
) -> int:
    """Call `read` until it returns at least `expected` or `timeout` passes; the last count.

    `read` may raise while the other side is not ready yet; that counts as -1.
    """
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        try:
            count = read()
        except Exception:
            count = -1
        if count >= expected:
            return count
        time.sleep(interval)
    return count
