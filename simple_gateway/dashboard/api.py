"""The read-only JSON API behind the pages (`/api/...`), also usable by scripts.

Same authentication as the pages (a dashboard session), or the admin token as
`Authorization: Bearer <token>` (HTTP Basic with ADMIN_USER/ADMIN_PASSWORD when those are the
credentials). Errors are `{"error": {"message", "type", "code"}}` with the right status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context, url_for
from werkzeug.wrappers import Response as BaseResponse

from simple_gateway.dashboard import render
from simple_gateway.dashboard.db import DatabaseUnavailable
from simple_gateway.dashboard.guard import api_error, require_login, security_headers
from simple_gateway.dashboard.queries import detail as detail_queries
from simple_gateway.dashboard.queries.export import FORMATS, export_rows
from simple_gateway.dashboard.queries.filters import FilterError, RequestFilter
from simple_gateway.dashboard.queries.guardrails import GuardrailFilter
from simple_gateway.dashboard.queries.guardrails import guardrails as guardrail_figures
from simple_gateway.dashboard.queries.ranges import TimeRange
from simple_gateway.dashboard.queries.requests import PAGE_SIZE, list_page, live_rows, poll_mark
from simple_gateway.dashboard.queries.usage import usage as usage_figures
from simple_gateway.dashboard.service import current_dashboard

bp = Blueprint("api", __name__, url_prefix="/api")
bp.before_request(require_login)
bp.after_request(security_headers)

# Served inline (previewed); anything else is a download. Never HTML or SVG inline.
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/mpeg",
        "audio/mp3",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/flac",
        "audio/webm",
        "audio/aac",
        "video/mp4",
        "video/webm",
    }
)


@bp.errorhandler(FilterError)
def _bad_filter(exc: FilterError) -> BaseResponse:
    return api_error(400, str(exc), "invalid_filter")


@bp.errorhandler(DatabaseUnavailable)
def _unavailable(exc: DatabaseUnavailable) -> BaseResponse:
    return api_error(
        503, f"records database unavailable: {exc}", "database_unavailable", "service_unavailable"
    )


@bp.get("/requests")
def requests_list() -> BaseResponse:
    """A page of records (`before=` for the next), or live updates (`after=`/`ended_since=`)."""
    db = current_dashboard().db
    filters = RequestFilter.from_args(request.args)
    after, ended_since = request.args.get("after", ""), request.args.get("ended_since", "")
    mark = poll_mark()
    if after or ended_since:
        if ended_since:
            ended_since = TimeRange.from_args({"since": ended_since}).iso_bounds()[0]
        return jsonify(rows=live_rows(db, filters, after, ended_since), poll_mark=mark)
    try:
        limit = int(request.args.get("limit", PAGE_SIZE))
    except ValueError:
        raise FilterError("limit: expected a number") from None
    page = list_page(db, filters, request.args.get("before", ""), limit)
    return jsonify(rows=page.rows, next_before=page.next_before, poll_mark=mark)


@bp.get("/requests/<key>")
def request_detail(key: str) -> BaseResponse:
    db = current_dashboard().db
    row = detail_queries.find_request(db, key)
    if row is None:
        return api_error(404, f"no record {key}", "not_found")
    row["stream"] = bool(row.get("stream"))
    row["request_headers"] = dict(render.mask_headers(row.get("request_headers")))
    row["response_headers"] = dict(render.mask_headers(row.get("response_headers")))
    for name in ("request_body", "response_body", "response_text", "error_message"):
        if row.get(name):
            row[name] = render.mask_text(row[name])
    files = detail_queries.files_of(db, row)
    for file in files:
        file["url"] = url_for("api.file", file_id=file["id"])
    return jsonify(
        request=row,
        files=files,
        guardrail_runs=detail_queries.guardrail_runs_of(db, row["id"]),
        attempts=detail_queries.attempts_of(db, row["id"]),
        curl=render.curl_command(request.host_url, row),
    )


@bp.get("/files/<file_id>")
def file(file_id: str) -> BaseResponse:
    """A stored file, found by its id in the files table; its path never comes from the URL."""
    dashboard = current_dashboard()
    row = detail_queries.file_row(dashboard.db, file_id)
    if row is None:
        return api_error(404, f"no file {file_id}", "not_found")
    root = dashboard.file_root.resolve()
    path = (root / row["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return api_error(404, f"file {file_id} is no longer on disk", "file_missing")
    mime = (row.get("content_type") or "").split(";")[0].strip().lower()
    inline = mime in INLINE_TYPES and request.args.get("download") != "1"
    response = _file_response(path, mime if inline else "application/octet-stream")
    name = f"{row['id']}{Path(row['path']).suffix}"
    response.headers["Content-Disposition"] = (
        f'{"inline" if inline else "attachment"}; filename="{name}"'
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _file_response(path: Path, content_type: str) -> BaseResponse:
    size = path.stat().st_size

    def chunks() -> Any:
        with open(path, "rb") as handle:
            while block := handle.read(64 * 1024):
                yield block

    response = Response(chunks(), content_type=content_type, direct_passthrough=True)
    response.content_length = size
    return response


@bp.get("/guardrails")
def guardrails() -> BaseResponse:
    span = TimeRange.from_args(request.args)
    chosen = GuardrailFilter.from_args(request.args)
    return jsonify(guardrail_figures(current_dashboard().db, span, chosen))


@bp.get("/usage")
def usage() -> BaseResponse:
    return jsonify(usage_figures(current_dashboard().db, TimeRange.from_args(request.args)))


@bp.get("/export")
def export() -> BaseResponse:
    """The filtered list as CSV or JSON Lines (`format=`), streamed; `bodies=1` adds bodies."""
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        raise FilterError(f"format: expected one of {', '.join(FORMATS)}")
    filters = RequestFilter.from_args(request.args)
    db = current_dashboard().db
    body = export_rows(db, filters, fmt, bodies=request.args.get("bodies") == "1")
    first = next(body, b"")  # fail now, with a status, if the database is unavailable
    response = Response(stream_with_context(_prepend(first, body)), content_type=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="requests.{fmt}"'
    return response


def _prepend(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest
