"""The checks every dashboard and API request passes: authentication, CSRF, security headers.

Both blueprints install `require_login` before every request, so a new route is protected
by being added to a blueprint; only the endpoints in PUBLIC_ENDPOINTS (the login form and
the static files the login page itself needs) are reachable without credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from flask import g, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from simple_gateway.dashboard.auth import SESSION_COOKIE
from simple_gateway.dashboard.service import current_dashboard

PUBLIC_ENDPOINTS = frozenset({"dashboard.login", "dashboard.static"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


def api_error(
    status: int, message: str, code: str, kind: str = "invalid_request_error"
) -> Response:
    response = jsonify(error={"message": message, "type": kind, "code": code})
    response.status_code = status
    return response


def require_login() -> Response | None:
    """Before every dashboard/API request: a session or (API) admin credentials, and CSRF."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    dashboard = current_dashboard()
    session = dashboard.sessions.load(request.cookies.get(SESSION_COOKIE))
    g.dashboard_session = session
    is_api = (request.blueprint or "") == "api"
    if session is None and not (is_api and _header_credentials_valid()):
        if is_api:
            response = api_error(
                401,
                "log in to the dashboard or send the admin token as "
                "'Authorization: Bearer <token>'",
                "unauthorized",
                "authentication_error",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="simple-gateway"'
            return response
        target = request.full_path if request.method in SAFE_METHODS else url_for("dashboard.index")
        return redirect(url_for("dashboard.login", next=target.rstrip("?")))
    if request.method not in SAFE_METHODS and not _csrf_valid(session):
        if is_api:
            return api_error(403, "missing or invalid CSRF token", "csrf_failed")
        return Response(
            "missing or invalid CSRF token; reload the page\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return None


def is_admin_request() -> bool:
    """Whether the current request carries the dashboard's admin credentials or session."""
    session = current_dashboard().sessions.load(request.cookies.get(SESSION_COOKIE))
    return session is not None or _header_credentials_valid()


def _header_credentials_valid() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    credentials = current_dashboard().credentials
    if scheme.lower() == "bearer" and value:
        return credentials.token_matches(value.strip())
    if scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return credentials.password_matches(user, password)
    return False


def _csrf_valid(session: Any) -> bool:
    if session is None:  # API with header credentials: no cookie, so no cross-site risk
        return True
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    return bool(given) and hmac.compare_digest(given, session.csrf)


def security_headers(response: Response) -> Response:
    """After every dashboard/API response: a strict CSP and no sniffing, framing or caching."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        headers["Cache-Control"] = "no-store"
    return response
