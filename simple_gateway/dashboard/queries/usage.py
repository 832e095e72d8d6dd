"""The usage page's figures: traffic, errors and latency over time; tokens and cost by model.

Percentiles are computed in SQL the same way on both databases (nearest rank over a window
function), so no row leaves the database: the page costs a couple of grouped scans of the
range, read off the primary key (ids encode their creation time).
"""

from __future__ import annotations

from typing import Any

from simple_gateway.dashboard.db import Database, Row
from simple_gateway.dashboard.queries.filters import ERROR_CONDITION
from simple_gateway.dashboard.queries.ranges import TimeRange


def timeline(db: Database, span: TimeRange) -> list[Row]:
    """Per bucket: requests, errors, requests per minute, p50 and p95 duration (ms)."""
    bucket = db.dialect.bucket(span.bucket_seconds)
    low, high = span.id_bounds()
    counts = db.query(
        f"SELECT {bucket} AS bucket, count(*) AS requests, "
        f"sum(CASE WHEN {ERROR_CONDITION} THEN 1 ELSE 0 END) AS errors "
        "FROM requests WHERE id >= ? AND id < ? GROUP BY 1 ORDER BY 1",
        (low, high),
    )
    latency = percentiles(db, bucket, "duration_ms", "requests", "id >= ? AND id < ?", [low, high])
    minutes = span.bucket_seconds / 60
    for row in counts:
        p50, p95 = latency.get(row["bucket"], (None, None))
        errors = int(row["errors"] or 0)
        row.update(
            errors=errors,
            error_rate=round(errors / row["requests"], 4) if row["requests"] else 0.0,
            per_minute=round(row["requests"] / minutes, 2),
            p50_ms=p50,
            p95_ms=p95,
        )
    return counts


def percentiles(
    db: Database, group: str, value: str, table: str, condition: str, params: list[Any]
) -> dict[Any, tuple[float | None, float | None]]:
    """p50 and p95 (nearest rank) of `value` per `group` expression."""
    rows = db.query(
        f"""
        SELECT grp, val, rn, cnt FROM (
            SELECT {group} AS grp, {value} AS val,
                   row_number() OVER (PARTITION BY {group} ORDER BY {value}) AS rn,
                   count(*) OVER (PARTITION BY {group}) AS cnt
            FROM {table} WHERE {condition} AND {value} IS NOT NULL
        ) ranked
        WHERE rn = (cnt * 50 + 99) / 100 OR rn = (cnt * 95 + 99) / 100
        """,
        params,
    )
    found: dict[Any, list[float | None]] = {}
    for row in rows:
        slot = found.setdefault(row["grp"], [None, None])
        count = int(row["cnt"])
        if row["rn"] == (count * 50 + 99) // 100:
            slot[0] = round(float(row["val"]), 1)
        if row["rn"] == (count * 95 + 99) // 100:
            slot[1] = round(float(row["val"]), 1)
    return {key: (v[0], v[1]) for key, v in found.items()}


def by_model_day(db: Database, span: TimeRange) -> list[Row]:
    """Requests, errors, tokens and cost per UTC day, provider and model; newest day first."""
    day = db.dialect.bucket(86_400)
    low, high = span.id_bounds()
    return db.query(
        f"SELECT {day} AS day, provider, model, count(*) AS requests, "
        f"sum(CASE WHEN {ERROR_CONDITION} THEN 1 ELSE 0 END) AS errors, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cost_usd) AS cost_usd, "
        "sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced "
        "FROM requests WHERE id >= ? AND id < ? "
        "GROUP BY 1, provider, model ORDER BY 1 DESC, provider, model",
        (low, high),
    )


def totals_by(rows: list[Row], key: str) -> list[Row]:
    """The per-day rows summed by `key` (provider or model), largest cost first."""
    sums: dict[str, Row] = {}
    for row in rows:
        name = row.get(key) or "(none)"
        total = sums.setdefault(
            name,
            {
                key: name,
                "requests": 0,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "unpriced": 0,
            },
        )
        for field in ("requests", "errors", "input_tokens", "output_tokens", "unpriced"):
            total[field] += int(row.get(field) or 0)
        total["cost_usd"] += float(row.get("cost_usd") or 0.0)
    return sorted(sums.values(), key=lambda r: (-r["cost_usd"], -r["requests"]))


def usage(db: Database, span: TimeRange) -> dict[str, Any]:
    days = by_model_day(db, span)
    return {
        "range": {
            "name": span.name,
            "since": span.iso_bounds()[0],
            "until": span.iso_bounds()[1],
            "bucket_seconds": span.bucket_seconds,
        },
        "timeline": timeline(db, span),
        "by_model_day": days,
        "by_model": totals_by(days, "model"),
        "by_provider": totals_by(days, "provider"),
    }
