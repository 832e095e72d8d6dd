"""Small statistics and formatting helpers shared by the scenarios."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence; NaN when it is empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats drifting
    return float(sorted_values[min(len(sorted_values), int(rank)) - 1])


def pct_change(base: float, value: float) -> float:
    return (value - base) / base * 100 if base else float("nan")


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ms(value: float) -> str:
    return f"{value:,.2f} ms"


def signed_ms(value: float) -> str:
    return f"{value:+,.2f} ms"


def signed_pct(value: float) -> str:
    return f"{value:+.1f}%"


def kib_to_mb(kib: float) -> float:
    """KiB (as /proc reports memory) to MB of 10^6 bytes, the unit the targets use."""
    return kib * 1024 / 1e6


def mb(kib: float) -> str:
    return f"{kib_to_mb(kib):,.1f} MB"
