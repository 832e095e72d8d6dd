"""Time ranges for the summary pages (usage, guardrails): a named span ending now, or explicit.

Each range also picks the width of its chart buckets, so a chart has tens to a few hundred
points whatever the span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simple_gateway.dashboard.queries.filters import FilterError, id_floor, parse_time

SPANS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_SPAN = "24h"


@dataclass(frozen=True)
class TimeRange:
    name: str  # a key of SPANS, or "custom"
    start: datetime
    end: datetime

    @classmethod
    def from_args(cls, args: Mapping[str, str], now: datetime | None = None) -> TimeRange:
        now = now or datetime.now(UTC)
        since, until = args.get("since", ""), args.get("until", "")
        if since or until:
            start = parse_time(since, "since") if since else now - SPANS[DEFAULT_SPAN]
            end = parse_time(until, "until") if until else now
            if end <= start:
                raise FilterError("until: must be after since")
            return cls("custom", start, end)
        name = args.get("range", "") or DEFAULT_SPAN
        if name not in SPANS:
            raise FilterError(f"range: expected one of {', '.join(SPANS)}")
        return cls(name, now - SPANS[name], now)

    @property
    def bucket_seconds(self) -> int:
        span = (self.end - self.start).total_seconds()
        if span <= 6 * 3600:
            return 60
        if span <= 7 * 86400:
            return 3600
        return 86400

    def id_bounds(self) -> tuple[str, str]:
        return id_floor(self.start), id_floor(self.end + timedelta(milliseconds=1))

    def iso_bounds(self) -> tuple[str, str]:
        return (
            self.start.isoformat(timespec="milliseconds"),
            self.end.isoformat(timespec="milliseconds"),
        )
