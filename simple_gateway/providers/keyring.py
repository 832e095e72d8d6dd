"""A provider's own API keys and the choice of the next one to use.

`api_key` in a provider entry is one key, a list of keys, or a list of
`{key: ..., weight: n}`. Several keys are used in turn by smooth weighted
round-robin (as nginx balances upstreams): over any window of sum(weights)
picks each key is used exactly `weight` times, interleaved rather than in runs.
Empty keys (an unset `${VAR}`) are dropped, so a provider whose key variable is
not set simply has no key.
"""

from __future__ import annotations

import threading
from typing import Any


class KeyRing:
    def __init__(self, weighted: list[tuple[str, int]]) -> None:
        self._keys = [key for key, _ in weighted]
        self._weights = [weight for _, weight in weighted]
        self._total = sum(self._weights)
        self._current = [0] * len(weighted)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, value: Any) -> KeyRing:
        """Read `api_key`; ValueError naming what is wrong."""
        if value is None:
            return cls([])
        items = value if isinstance(value, list) else [value]
        weighted: list[tuple[str, int]] = []
        for index, item in enumerate(items):
            key, weight = item, 1
            if isinstance(item, dict):
                unknown = set(item) - {"key", "weight"}
                if unknown:
                    raise ValueError(f"api_key[{index}]: unknown key '{sorted(unknown)[0]}'")
                key, weight = item.get("key"), item.get("weight", 1)
            if not isinstance(key, str):
                raise ValueError(f"api_key[{index}]: expected a string key")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ValueError(f"api_key[{index}].weight: expected a whole number of at least 1")
            if key.strip():
                weighted.append((key.strip(), weight))
        return cls(weighted)

    def __len__(self) -> int:
        return len(self._keys)

    def pick(self) -> str | None:
        if not self._keys:
            return None
        if len(self._keys) == 1:
            return self._keys[0]
        with self._lock:
            current = self._current
            for index, weight in enumerate(self._weights):
                current[index] += weight
            best = max(range(len(current)), key=current.__getitem__)
            current[best] -= self._total
            return self._keys[best]
