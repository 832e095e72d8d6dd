"""What an exchange cost, from its usage and a price table in USD per 1M tokens.

The table ships as `prices.yaml` next to this module; the user's `prices:`
config section overrides or extends it. A model the table does not know is
"unpriced" with no cost at all: a guessed 0 would read as free in every sum.

A model name is matched exactly, then without a provider prefix (`openai/`,
`openrouter/anthropic/`) or a Vertex `@version`, then by the longest known
name it extends with only date or version parts (`gpt-4o-2024-08-06`,
`claude-sonnet-4-20250514`, `-latest`, `-v1:0`). A variant with a word in the
suffix (`o3-pro`, `gpt-4o-realtime-preview`) is a different product and is
not priced as its base model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import yaml

from simple_gateway.records.usage import Usage

PRICED = "priced"
UNPRICED = "unpriced"
NO_USAGE = "no_usage"

_FIELDS = ("input", "output", "cached_input")
_VERSION_PART = re.compile(r"\d+|latest|v\d+(?::\d+)?")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None


_RESOLVED_MAX = 4096  # model names remembered with their table entry


class PriceTable:
    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        # Every record asks, mostly about a handful of names; a dated one costs a scan.
        self._resolved: dict[str, str | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Mapping[str, float]] | None = None) -> PriceTable:
        """The shipped table with `overrides` applied; raises ValueError on a malformed entry."""
        text = resources.files("simple_gateway.records").joinpath("prices.yaml").read_text("utf-8")
        shipped = yaml.safe_load(text)["models"]
        prices = {name.lower(): _price(name, fields, None) for name, fields in shipped.items()}
        for name, fields in (overrides or {}).items():
            key = str(name).lower()
            prices[key] = _price(name, fields, prices.get(key))
        return cls(prices)

    def __contains__(self, model: str) -> bool:
        return self.resolve(model) is not None

    def resolve(self, model: str | None) -> str | None:
        """The table entry that prices `model`, or None."""
        if not model:
            return None
        try:
            return self._resolved[model]
        except KeyError:
            pass
        if len(self._resolved) >= _RESOLVED_MAX:
            self._resolved.clear()
        found = self._resolved[model] = self._lookup(model)
        return found

    def _lookup(self, model: str) -> str | None:
        name = model.strip().lower()
        if name in self._prices:
            return name
        name = name.rsplit("/", 1)[-1].split("@", 1)[0]
        if name in self._prices:
            return name
        best: str | None = None
        for key in self._prices:
            if not name.startswith(key + "-") or (best is not None and len(key) < len(best)):
                continue
            if all(_VERSION_PART.fullmatch(part) for part in name[len(key) + 1 :].split("-")):
                best = key
        return best

    def price_of(self, model: str | None) -> ModelPrice | None:
        key = self.resolve(model)
        return None if key is None else self._prices[key]

    def cost(self, model: str | None, usage: Usage | None) -> tuple[float | None, str]:
        """(cost in USD, status): status is "priced", "unpriced" or "no_usage"."""
        if usage is None or (usage.input_tokens is None and usage.output_tokens is None):
            return None, NO_USAGE
        price = self.price_of(model)
        if price is None:
            return None, UNPRICED
        total_in = usage.input_tokens or 0
        cached = min(usage.cached_tokens or 0, total_in)
        cached_price = price.input if price.cached_input is None else price.cached_input
        dollars = (
            (total_in - cached) * price.input
            + cached * cached_price
            + (usage.output_tokens or 0) * price.output
        ) / 1_000_000
        return round(dollars, 8), PRICED


def _price(name: Any, fields: Any, base: ModelPrice | None) -> ModelPrice:
    if not isinstance(fields, Mapping):
        raise ValueError(f"price of {name!r} must be a mapping of {', '.join(_FIELDS)}")
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise ValueError(f"price of {name!r} has unknown fields: {', '.join(sorted(unknown))}")
    values: dict[str, float] = {}
    for key, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"price {name!r}.{key} must be a number, not {value!r}")
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"price {name!r}.{key} must be a finite number >= 0")
        values[key] = float(value)
    if base is not None:
        return replace(base, **values)
    if "input" not in values or "output" not in values:
        raise ValueError(f"price of new model {name!r} needs both input and output")
    return ModelPrice(**values)
