"""Export of the filtered list as CSV or JSON Lines, streamed: memory stays bounded.

Rows are read through a streaming cursor (a server-side cursor on PostgreSQL) in batches,
and each batch is encoded and yielded before the next is read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from simple_gateway.dashboard.db import Database
from simple_gateway.dashboard.queries.filters import RequestFilter

EXPORT_COLUMNS = (
    "id",
    "request_id",
    "started_at",
    "first_byte_at",
    "ended_at",
    "provider",
    "method",
    "path",
    "query",
    "model",
    "stream",
    "status",
    "outcome",
    "duration_ms",
    "ttfb_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "usage_source",
    "cost_usd",
    "cost_status",
    "error_kind",
    "error_message",
    "bytes_in",
    "bytes_out",
    "client_addr",
    "user_agent",
)
BODY_COLUMNS = ("request_body", "response_text", "response_body")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
BATCH = 1000


def export_rows(
    db: Database, filters: RequestFilter, fmt: str, bodies: bool = False
) -> Iterator[bytes]:
    columns = [*EXPORT_COLUMNS, *(BODY_COLUMNS if bodies else ())]
    if filters.q:
        db.prepare_search()
    conditions, params = filters.where(db.dialect)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {', '.join(columns)} FROM requests {where} ORDER BY id DESC"
    rows = db.stream(sql, params, batch=BATCH)
    if fmt == "csv":
        yield from _csv(rows, columns)
    else:
        yield from _jsonl(rows)


def _csv(rows: Iterator[dict[str, object]], columns: list[str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for count, row in enumerate(rows, 1):
        writer.writerow([_csv_cell(row[c]) for c in columns])
        if count % BATCH == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: formula-looking text gets a leading quote."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _jsonl(rows: Iterator[dict[str, object]]) -> Iterator[bytes]:
    chunk: list[str] = []
    for row in rows:
        if "stream" in row:
            row["stream"] = bool(row["stream"])
        chunk.append(json.dumps(row, ensure_ascii=False))
        if len(chunk) >= BATCH:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()
