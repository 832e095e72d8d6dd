"""The usage page's figures: traffic, errors and latency over time; tokens and cost by model.

Read from `usage_rollup` (migration 0005): one row per UTC minute, provider and model, kept
by triggers on `requests`, so a month of a busy gateway is a few hundred thousand small rows
rather than every record. One grouped scan of the range gives everything: the chart buckets
and the per-day table are summed from it in Python. Latency percentiles are estimated from the
rollup's duration bands (linear within a band), which is what a chart needs; a record's exact
timing is on its own page.
"""

from __future__ import annotations

from typing import Any

from simple_gateway.dashboard.db import Database, Row
from simple_gateway.dashboard.queries.ranges import TimeRange

# Upper edges (ms) of the duration bands d00..d14; the last band is open.
BAND_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000)
BANDS = tuple(f"d{i:02d}" for i in range(len(BAND_EDGES) + 1))
COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd", "unpriced")
_BUCKET_WIDTH = {60: 16, 3600: 13, 86400: 10}  # characters of the minute text kept


def _minute_bounds(span: TimeRange) -> tuple[str, str]:
    start, end = span.iso_bounds()
    return start[:16], end[:16] + "~"  # "~" sorts after any minute text: the end minute counts


def grouped(db: Database, span: TimeRange) -> list[Row]:
    """Counters and duration bands per chart bucket, provider and model, in bucket order."""
    width = _BUCKET_WIDTH[span.bucket_seconds]
    sums = ", ".join(f"sum({c}) AS {c}" for c in (*COUNTERS, *BANDS))
    rows = db.query(
        f"SELECT substr(minute, 1, {width}) AS bucket, provider, model, {sums} "
        "FROM usage_rollup WHERE minute >= ? AND minute < ? "
        "GROUP BY 1, provider, model ORDER BY 1",
        _minute_bounds(span),
    )
    for row in rows:
        for name in (*COUNTERS, *BANDS):
            row[name] = float(row[name] or 0) if name == "cost_usd" else int(row[name] or 0)
    return [r for r in rows if r["requests"]]


def timeline(rows: list[Row], span: TimeRange) -> list[Row]:
    """Per bucket: requests, errors, error rate, requests per minute, p50 and p95 (ms)."""
    buckets: dict[str, list[int]] = {}
    for row in rows:
        totals = buckets.setdefault(row["bucket"], [0] * (2 + len(BANDS)))
        for index, name in enumerate(("requests", "errors", *BANDS)):
            totals[index] += row[name]
    minutes = span.bucket_seconds / 60
    suffix = ":00" if span.bucket_seconds == 3600 else ""
    result = []
    for bucket, (requests, errors, *bands) in buckets.items():
        result.append(
            {
                "bucket": bucket + suffix,
                "requests": requests,
                "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else 0.0,
                "per_minute": round(requests / minutes, 2),
                "p50_ms": band_percentile(bands, 0.50),
                "p95_ms": band_percentile(bands, 0.95),
            }
        )
    return result


def band_percentile(bands: list[int], q: float) -> float | None:
    """The q-quantile of durations counted in bands, interpolated within its band."""
    total = sum(bands)
    if not total:
        return None
    target = q * total
    seen = 0
    for index, count in enumerate(bands):
        if count and seen + count >= target:
            low = BAND_EDGES[index - 1] if index else 0
            if index == len(BAND_EDGES):
                return float(low)
            high = BAND_EDGES[index]
            return round(low + (high - low) * (target - seen) / count, 1)
        seen += count
    return float(BAND_EDGES[-1])


def by_model_day(rows: list[Row]) -> list[Row]:
    """Requests, errors, tokens and cost per UTC day, provider and model; newest day first."""
    days: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        key = (row["bucket"][:10], row["provider"], row["model"])
        total = days.setdefault(
            key,
            {
                "day": key[0],
                "provider": key[1],
                "model": key[2] or None,
                **dict.fromkeys(COUNTERS, 0),
            },
        )
        for name in COUNTERS:
            total[name] += row[name]
    ordered = sorted(days.values(), key=lambda r: (r["provider"], r["model"] or ""))
    return sorted(ordered, key=lambda r: r["day"], reverse=True)


def totals_by(rows: list[Row], key: str) -> list[Row]:
    """The per-day rows summed by `key` (provider or model), largest cost first."""
    sums: dict[str, Row] = {}
    for row in rows:
        name = row.get(key) or "(none)"
        total = sums.setdefault(name, {key: name, **dict.fromkeys(COUNTERS, 0)})
        for field in COUNTERS:
            total[field] += row.get(field) or 0
    return sorted(sums.values(), key=lambda r: (-r["cost_usd"], -r["requests"]))


def usage(db: Database, span: TimeRange) -> dict[str, Any]:
    rows = grouped(db, span)
    days = by_model_day(rows)
    since, until = span.iso_bounds()
    return {
        "range": {
            "name": span.name,
            "since": since,
            "until": until,
            "bucket_seconds": span.bucket_seconds,
        },
        "timeline": timeline(rows, span),
        "by_model_day": days,
        "by_model": totals_by(days, "model"),
        "by_provider": totals_by(days, "provider"),
    }
