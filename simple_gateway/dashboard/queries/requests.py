"""The requests list: one page at a time (keyset on id), and what arrived since the last look.

Pages are keyset-paginated on `id` (newest first): `before=<id>` continues below the last
row shown, so page 1,000 costs what page 1 does. Live updates ask for rows with an id above
the newest shown (`after=<id>`) and, because a long exchange is recorded when it ends (its id
is from when it started), also for rows that ended since the last poll (`ended_since=`); the
page merges both by id. Both are plain reads, so rows written by every worker appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simple_gateway.dashboard.db import Database, Row
from simple_gateway.dashboard.queries.filters import RequestFilter

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
LIVE_LIMIT = 200
# How far back a live poll looks for rows that ended (covers the writer's batching delay).
LIVE_OVERLAP = timedelta(seconds=15)

MENU_TTL_SECONDS = 60.0

LIST_COLUMNS = (
    "id",
    "request_id",
    "started_at",
    "ended_at",
    "provider",
    "method",
    "path",
    "model",
    "stream",
    "status",
    "outcome",
    "duration_ms",
    "ttfb_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_status",
    "error_kind",
)
# Columns added by later migrations; listed when the database has them.
OPTIONAL_LIST_COLUMNS = ("blocked_by", "alias", "deployment", "attempts")


@dataclass
class Page:
    rows: list[Row]
    next_before: str | None  # the `before` cursor of the next page, None on the last one


def select_list(db: Database) -> str:
    present = db.columns("requests")
    names = [*LIST_COLUMNS, *(c for c in OPTIONAL_LIST_COLUMNS if c in present)]
    return ", ".join(names)


def list_page(
    db: Database, filters: RequestFilter, before: str = "", limit: int = PAGE_SIZE
) -> Page:
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if filters.q:
        db.prepare_search()
        conditions, params = filters.where(db.dialect, search=False)
        sql, args = db.dialect.search_page(
            select_list(db), conditions, params, filters.q, before, limit + 1
        )
        rows = db.query(sql, args)
        cursors = [row.pop("cursor") for row in rows]
    else:
        conditions, params = filters.where(db.dialect)
        if before:
            conditions.append("id < ?")
            params.append(before)
        sql = (
            f"SELECT {select_list(db)} FROM requests {_where(conditions)} ORDER BY id DESC LIMIT ?"
        )
        rows = db.query(sql, [*params, limit + 1])
        cursors = [row["id"] for row in rows]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([_shape(r) for r in rows], cursors[limit - 1] if more else None)


def live_rows(db: Database, filters: RequestFilter, after: str, ended_since: str) -> list[Row]:
    """Rows newer than `after`, and rows that ended at or after `ended_since`, newest first."""
    if filters.q:
        db.prepare_search()
    conditions, params = filters.where(db.dialect)
    select = select_list(db)
    found: dict[str, Row] = {}
    if after:
        sql = (
            f"SELECT {select} FROM requests {_where([*conditions, 'id > ?'])} "
            "ORDER BY id DESC LIMIT ?"
        )
        for row in db.query(sql, [*params, after, LIVE_LIMIT]):
            found[row["id"]] = row
    if ended_since:
        sql = (
            f"SELECT {select} FROM requests {_where([*conditions, 'ended_at >= ?'])} "
            "ORDER BY ended_at DESC LIMIT ?"
        )
        for row in db.query(sql, [*params, ended_since, LIVE_LIMIT]):
            found.setdefault(row["id"], row)
    return [_shape(found[key]) for key in sorted(found, reverse=True)]


def poll_mark(now: datetime | None = None) -> str:
    """The `ended_since` value for the next live poll: now, minus the overlap."""
    moment = (now or datetime.now(UTC)) - LIVE_OVERLAP
    return moment.isoformat(timespec="milliseconds")


def distinct_values(db: Database, column: str) -> list[str]:
    """Providers or models seen in the last day, for the filter menus (from the rollup).

    Kept for a minute per worker: the menus need not change by the second, and the list page
    should not scan rollup rows on every load.
    """
    if column not in ("provider", "model"):
        raise ValueError(column)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()[:16]
    sql = (
        f"SELECT DISTINCT {column} AS value FROM usage_rollup "
        f"WHERE minute >= ? AND {column} <> '' ORDER BY {column}"
    )
    return db.remembered(
        f"menu:{column}", MENU_TTL_SECONDS, lambda: [r["value"] for r in db.query(sql, (since,))]
    )


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _shape(row: Row) -> Row:
    row["stream"] = bool(row.get("stream"))
    return row


def status_class(row: dict[str, Any]) -> str:
    """A CSS class for a row: ok, warn (4xx), error (5xx or not completed), blocked."""
    if row.get("outcome") == "blocked":
        return "blocked"
    status = row.get("status") or 0
    if row.get("outcome") != "completed" or status >= 500:
        return "error"
    if status >= 400:
        return "warn"
    return "ok"
