"""The guardrails page's figures, from `guardrail_runs` (migration 0003) when it exists.

Per guardrail and stage over a time range: runs, blocks, errors, timeouts, p50 and p95
duration; and the recent runs that blocked, redacted or replaced text, original beside
replacement. Filters: guardrail name, stage, verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simple_gateway.dashboard.db import Database
from simple_gateway.dashboard.queries.filters import FilterError
from simple_gateway.dashboard.queries.ranges import TimeRange

STAGES = ("input", "output")
VERDICTS = ("pass", "block", "redact", "replace", "error", "timeout", "cancelled")
NOTABLE = ("block", "redact", "replace")
RECENT_LIMIT = 50


@dataclass(frozen=True)
class GuardrailFilter:
    name: str = ""
    stage: str = ""
    verdict: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> GuardrailFilter:
        found = cls(
            str(args.get("name", "")).strip(),
            str(args.get("stage", "")).strip(),
            str(args.get("verdict", "")).strip(),
        )
        if found.stage and found.stage not in STAGES:
            raise FilterError(f"stage: expected one of {', '.join(STAGES)}")
        if found.verdict and found.verdict not in VERDICTS:
            raise FilterError(f"verdict: expected one of {', '.join(VERDICTS)}")
        return found

    def where(self, span: TimeRange) -> tuple[str, list[Any]]:
        conditions = ["started_at >= ?", "started_at < ?"]
        params: list[Any] = list(span.iso_bounds())
        for column, value in (
            ("guardrail", self.name),
            ("stage", self.stage),
            ("verdict", self.verdict),
        ):
            if value:
                conditions.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(conditions), params


def guardrails(db: Database, span: TimeRange, chosen: GuardrailFilter) -> dict[str, Any]:
    if not db.has_table("guardrail_runs"):
        return {"available": False, "summary": [], "recent": [], "names": []}
    condition, params = chosen.where(span)
    summary = db.query(
        "SELECT guardrail, stage, count(*) AS runs, "
        "sum(CASE WHEN verdict = 'block' THEN 1 ELSE 0 END) AS blocks, "
        "sum(CASE WHEN verdict IN ('redact', 'replace') THEN 1 ELSE 0 END) AS replacements, "
        "sum(CASE WHEN verdict = 'error' THEN 1 ELSE 0 END) AS errors, "
        "sum(CASE WHEN verdict = 'timeout' THEN 1 ELSE 0 END) AS timeouts "
        f"FROM guardrail_runs WHERE {condition} GROUP BY guardrail, stage "
        "ORDER BY guardrail, stage",
        params,
    )
    group = "guardrail || ' ' || stage"
    latency = percentiles(db, group, "duration_ms", "guardrail_runs", condition, params)
    for row in summary:
        row["p50_ms"], row["p95_ms"] = latency.get(
            f"{row['guardrail']} {row['stage']}", (None, None)
        )
    verdicts = [chosen.verdict] if chosen.verdict else list(NOTABLE)
    recent_condition, recent_params = GuardrailFilter(chosen.name, chosen.stage).where(span)
    recent = db.query(
        "SELECT id, record_id, started_at, guardrail, type, stage, verdict, enforced, reason, "
        "score, duration_ms, error, original_text, override_text FROM guardrail_runs "
        f"WHERE {recent_condition} AND verdict IN ({', '.join('?' * len(verdicts))}) "
        "ORDER BY started_at DESC, id DESC LIMIT ?",
        [*recent_params, *verdicts, RECENT_LIMIT],
    )
    for row in recent:
        row["enforced"] = bool(row["enforced"])
    names = [
        r["guardrail"]
        for r in db.query(
            "SELECT DISTINCT guardrail FROM guardrail_runs WHERE started_at >= ? "
            "ORDER BY guardrail",
            [span.iso_bounds()[0]],
        )
    ]
    return {"available": True, "summary": summary, "recent": recent, "names": names}


def percentiles(
    db: Database, group: str, value: str, table: str, condition: str, params: list[Any]
) -> dict[Any, tuple[float | None, float | None]]:
    """p50 and p95 (nearest rank) of `value` per `group` expression, in SQL on both databases."""
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
