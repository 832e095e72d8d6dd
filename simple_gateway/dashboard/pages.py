"""The dashboard's pages: login, requests (live list), detail, guardrails, usage, playground.

Pages are server-rendered Jinja templates (autoescaped); the scripts under static/ add the
live list, charts and the playground, reading the JSON API and writing with `textContent`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from simple_gateway.dashboard import render
from simple_gateway.dashboard.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_LIFETIME
from simple_gateway.dashboard.db import DatabaseUnavailable
from simple_gateway.dashboard.guard import require_login, security_headers
from simple_gateway.dashboard.queries import detail as detail_queries
from simple_gateway.dashboard.queries.filters import OUTCOMES, STATUS_CLASSES, RequestFilter
from simple_gateway.dashboard.queries.guardrails import STAGES, VERDICTS, GuardrailFilter
from simple_gateway.dashboard.queries.guardrails import guardrails as guardrail_figures
from simple_gateway.dashboard.queries.ranges import SPANS, TimeRange
from simple_gateway.dashboard.queries.requests import (
    distinct_values,
    list_page,
    poll_mark,
    status_class,
)
from simple_gateway.dashboard.queries.usage import usage as usage_figures
from simple_gateway.dashboard.service import current_dashboard
from simple_gateway.runtime import current_gateway

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)
bp.before_request(require_login)
bp.after_request(security_headers)


@bp.app_template_filter("size")
def _size(value: int | None) -> str:
    return render.size_text(int(value or 0))


@bp.app_template_filter("ms")
def _ms(value: float | None) -> str:
    if value is None:
        return "\u2013"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


@bp.app_template_filter("usd")
def _usd(value: float | None) -> str:
    return "\u2013" if value is None else f"${value:,.6f}".rstrip("0").rstrip(".")


@bp.app_template_filter("when")
def _when(value: str | None) -> str:
    """An ISO instant shown compactly, in UTC."""
    return (value or "").replace("T", " ")[:23]


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    session = g.get("dashboard_session")
    return {"csrf_token": session.csrf if session else "", "status_class": status_class}


@bp.errorhandler(DatabaseUnavailable)
def _database_unavailable(exc: DatabaseUnavailable) -> tuple[str, int]:
    return render_template("error.html", title="Database unavailable", message=str(exc)), 503


@bp.errorhandler(ValueError)
def _bad_filter(exc: ValueError) -> tuple[str, int]:
    return render_template("error.html", title="Bad filter", message=str(exc)), 400


@bp.get("/")
def index() -> str:
    dashboard = current_dashboard()
    filters = RequestFilter.from_args(request.args)
    before = request.args.get("before", "")
    page = list_page(dashboard.db, filters, before)
    return render_template(
        "requests.html",
        page=page,
        filters=filters,
        before=before,
        providers=sorted(
            {*current_gateway().router.providers, *distinct_values(dashboard.db, "provider")}
        ),
        models=distinct_values(dashboard.db, "model"),
        status_classes=list(STATUS_CLASSES),
        outcomes=list(OUTCOMES),
        poll_mark=poll_mark(),
        newest=page.rows[0]["id"] if page.rows else "",
    )


@bp.get("/rows")
def rows() -> str:
    """The next page of the list as table rows (for "older" without a reload)."""
    filters = RequestFilter.from_args(request.args)
    page = list_page(current_dashboard().db, filters, request.args.get("before", ""))
    return render_template("_rows.html", page=page, filters=filters)


@bp.get("/requests/<key>")
def detail(key: str) -> Any:
    dashboard = current_dashboard()
    db = dashboard.db
    row = detail_queries.find_request(db, key)
    if row is None:
        message = (
            f"No record {key} yet. Records are written shortly after an exchange ends; "
            "reload in a moment."
        )
        return render_template("error.html", title="Not recorded (yet)", message=message), 404
    files = detail_queries.files_of(db, row)
    for file in files:
        file["preview"] = _preview_kind(file.get("content_type"))
    return render_template(
        "detail.html",
        row=row,
        request_headers=render.mask_headers(row.get("request_headers")),
        response_headers=render.mask_headers(row.get("response_headers")),
        request_body=render.mask_text(
            render.pretty_body(row.get("request_body"), row.get("request_content_type"))
        ),
        response_body=render.mask_text(
            render.pretty_body(row.get("response_body"), row.get("response_content_type"))
        ),
        sse_events=render.sse_events(row.get("response_body")) if row.get("stream") else 0,
        files=files,
        guardrail_runs=detail_queries.guardrail_runs_of(db, row["id"]),
        attempts=detail_queries.attempts_of(db, row["id"]),
        curl=render.curl_command(request.host_url, row),
    )


def _preview_kind(content_type: str | None) -> str:
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    return ""


@bp.get("/guardrails")
def guardrails() -> str:
    span = TimeRange.from_args(request.args)
    chosen = GuardrailFilter.from_args(request.args)
    figures = guardrail_figures(current_dashboard().db, span, chosen)
    return render_template(
        "guardrails.html",
        figures=figures,
        span=span,
        chosen=chosen,
        spans=list(SPANS),
        stages=STAGES,
        verdicts=VERDICTS,
        extra_query=urlencode({k: v for k, v in vars(chosen).items() if v}),
    )


@bp.get("/usage")
def usage() -> str:
    span = TimeRange.from_args(request.args)
    figures = usage_figures(current_dashboard().db, span)
    return render_template(
        "usage.html", figures=figures, span=span, spans=list(SPANS), extra_query=""
    )


@bp.get("/playground")
def playground() -> str:
    gateway = current_gateway()
    return render_template(
        "playground.html",
        providers=sorted(gateway.router.providers),
        default_provider=gateway.settings.default_provider,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    dashboard = current_dashboard()
    sessions = dashboard.sessions
    error = ""
    if request.method == "POST":
        address = request.remote_addr or "?"
        if not sessions.login_csrf_matches(
            request.cookies.get(LOGIN_CSRF_COOKIE), request.form.get("csrf_token", "")
        ):
            error = "The form expired; please try again."
        elif _credentials_ok(request.form):
            dashboard.throttle.succeeded(address)
            _, cookie = sessions.create()
            response = redirect(_safe_next(request.form.get("next", "")))
            _set_cookie(response, SESSION_COOKIE, cookie, SESSION_LIFETIME)
            response.delete_cookie(LOGIN_CSRF_COOKIE, path="/dashboard")
            return response
        else:
            time.sleep(dashboard.throttle.failed(address))
            error = "Wrong credentials."
    token, cookie = sessions.login_csrf()
    page = render_template(
        "login.html",
        error=error,
        login_csrf=token,
        kind=dashboard.login_kind,
        token_file=dashboard.credentials.token_file,
        next=_safe_next(request.values.get("next", "")),
    )
    response = Response(page, status=401 if error else 200, mimetype="text/html")
    _set_cookie(response, LOGIN_CSRF_COOKIE, cookie, 3600, path="/dashboard")
    return response


@bp.post("/logout")
def logout() -> Response:
    session = g.get("dashboard_session")
    if session is not None:
        current_dashboard().sessions.end(session)
    response = redirect(url_for("dashboard.login"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _credentials_ok(form: Any) -> bool:
    credentials = current_dashboard().credentials
    if credentials.user:
        return credentials.password_matches(form.get("user", ""), form.get("password", ""))
    return credentials.token_matches(form.get("token", "").strip())


def _safe_next(target: str) -> str:
    """Only a path on this dashboard: never another site (an open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/dashboard") or "\\" in target:
        return url_for("dashboard.index")
    return target


def _set_cookie(response: Response, name: str, value: str, max_age: int, path: str = "/") -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
