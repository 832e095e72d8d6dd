"""The request list's filters: parsed from a URL's query, turned into one SQL condition.

Filters live in the URL (`?provider=openai&status=5xx&q=refund`) so a view can be bookmarked
and shared; every page and API route that lists requests (list, live updates, export) reads
them through `RequestFilter.from_args`, so they all mean the same thing.

Times are UTC, given as ISO 8601 (`2026-11-23T14:00`, with or without seconds or offset).
A time range becomes a range of ids: ids are ULIDs whose first ten characters encode the
creation time in milliseconds, so the range is read straight off the primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from simple_gateway.dashboard.db import Dialect

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ERROR_CONDITION = "(outcome <> 'completed' OR status >= 400)"

# Outcome filter values: a record outcome, or `errors` (anything that did not go well).
OUTCOMES: dict[str, str] = {
    "errors": ERROR_CONDITION,
    "completed": "outcome = 'completed'",
    "blocked": "outcome = 'blocked'",
    "upstream_error": "outcome = 'upstream_error'",
    "gateway_error": "outcome = 'gateway_error'",
    "client_disconnected": "outcome = 'client_disconnected'",
    "upstream_interrupted": "outcome = 'upstream_interrupted'",
    "interrupted": "outcome = 'interrupted'",
}
STATUS_CLASSES: dict[str, str] = {
    "2xx": "status >= 200 AND status < 300",
    "3xx": "status >= 300 AND status < 400",
    "4xx": "status >= 400 AND status < 500",
    "5xx": "status >= 500 AND status < 600",
    "none": "status IS NULL",
}


class FilterError(ValueError):
    """A filter value that cannot be understood; the message names the parameter."""


@dataclass(frozen=True)
class RequestFilter:
    provider: str = ""
    model: str = ""
    status: str = ""
    outcome: str = ""
    path: str = ""
    since: str = ""
    until: str = ""
    min_ms: str = ""
    q: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> RequestFilter:
        values = {f.name: str(args.get(f.name, "") or "").strip() for f in fields(cls)}
        found = cls(**values)
        found.validate()
        return found

    def validate(self) -> None:
        if self.status and self.status not in STATUS_CLASSES:
            raise FilterError(f"status: expected one of {', '.join(STATUS_CLASSES)}")
        if self.outcome and self.outcome not in OUTCOMES:
            raise FilterError(f"outcome: expected one of {', '.join(OUTCOMES)}")
        if self.min_ms:
            try:
                float(self.min_ms)
            except ValueError:
                raise FilterError("min_ms: expected a number of milliseconds") from None
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                parse_time(value, name)

    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def query_string(self, **extra: str) -> str:
        """The filters (and `extra`) as a URL query, without empty values."""
        pairs = {f.name: getattr(self, f.name) for f in fields(self)}
        pairs.update(extra)
        return urlencode({k: v for k, v in pairs.items() if v})

    def where(self, dialect: Dialect, search: bool = True) -> tuple[list[str], list[Any]]:
        """SQL conditions (to be ANDed) on `requests` and their parameters.

        With `search=False` the text search is left out (for callers that search themselves).
        """
        conditions: list[str] = []
        params: list[Any] = []
        if self.provider:
            conditions.append("provider = ?")
            params.append(self.provider)
        if self.model:
            conditions.append("model = ?")
            params.append(self.model)
        if self.status:
            conditions.append(STATUS_CLASSES[self.status])
        if self.outcome:
            conditions.append(OUTCOMES[self.outcome])
        if self.path:
            conditions.append("path LIKE ? ESCAPE '\\'")
            params.append(f"%{escape_like(self.path)}%")
        if self.since:
            conditions.append("id >= ?")
            params.append(id_floor(parse_time(self.since, "since")))
        if self.until:
            conditions.append("id < ?")
            params.append(id_floor(parse_time(self.until, "until")))
        if self.min_ms:
            conditions.append("duration_ms >= ?")
            params.append(float(self.min_ms))
        if self.q and search:
            conditions.append(dialect.search_condition())
            params.append(dialect.search_parameter(self.q))
        return conditions, params


def parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: expected a UTC time such as 2026-11-23T14:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def id_floor(moment: datetime) -> str:
    """The smallest ULID prefix for an instant: every id made at or after it sorts >= this."""
    millis = max(0, int(moment.timestamp() * 1000))
    digits = []
    for _ in range(10):
        millis, digit = divmod(millis, 32)
        digits.append(_CROCKFORD[digit])
    return "".join(reversed(digits))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
