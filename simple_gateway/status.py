"""Operational endpoints: liveness, a status summary, Prometheus metrics.

`/status` shows paths, provider URLs and settings, so only a caller with credentials
(`Authorization: Bearer <STATUS_TOKEN>`, or the dashboard's admin credentials: its token,
user and password, or a logged-in dashboard session) sees it whole; anyone else gets what `/health`
would say plus the version and uptime. `/metrics` asks for `METRICS_TOKEN` when it is set.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simple_gateway import __version__, errors
from simple_gateway.dashboard.guard import is_admin_request
from simple_gateway.runtime import Gateway, current_gateway
from simple_gateway.settings import Settings

log = logging.getLogger(__name__)
bp = Blueprint("status", __name__)


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """True when `authorization` is `Bearer <token>`; compared in constant time."""
    if not token or not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def may_see_full_status(settings: Settings, authorization: str | None) -> bool:
    """Whether a caller presenting `authorization` may see the full /status."""
    return bearer_token_matches(authorization, settings.status_token)


def _unauthorized(message: str) -> Response:
    error = errors.Unauthorized(message)
    response = Response(error.body(), status=error.status, content_type="application/json")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@bp.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@bp.get("/status")
def status() -> Response:
    gateway = current_gateway()
    authorization = request.headers.get("Authorization")
    summary = {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - gateway.started_at, 1),
    }
    if may_see_full_status(gateway.settings, authorization) or is_admin_request():
        return jsonify(**summary, **_full_status(gateway))
    if authorization:
        return _unauthorized(
            "these credentials do not give access to /status (STATUS_TOKEN or the dashboard's "
            "admin credentials)"
        )
    return jsonify(**summary)


def _full_status(gateway: Gateway) -> dict[str, Any]:
    settings = gateway.settings
    records: dict[str, object] = {"enabled": settings.records_enabled}
    if gateway.metrics is not None:
        try:
            records["totals"] = gateway.metrics.record_counters()
        except Exception:  # the other workers' metric files: never worth a 500 here
            log.exception("/status: could not read the record counters")
            records["totals"] = None
    if gateway.writer is not None:
        records["this_worker"] = gateway.writer.stats
    return {
        "pid": os.getpid(),
        "providers": {
            name: {
                "type": settings.providers[name].type,
                "base_url": p.base_url,
                "prefix": p.prefix,
            }
            for name, p in gateway.router.providers.items()
        },
        "default_provider": settings.default_provider,
        "config_file": settings.source,
        "in_flight": len(gateway.live),
        "records": records,
        "settings": settings.summary(),
    }


@bp.get("/metrics")
def metrics() -> Response:
    gateway = current_gateway()
    token = gateway.settings.metrics_token
    if token and not bearer_token_matches(request.headers.get("Authorization"), token):
        return _unauthorized("/metrics needs Authorization: Bearer <METRICS_TOKEN>")
    if gateway.metrics is None:
        return Response("metrics are disabled (METRICS_ENABLED=false)\n", status=404)
    body, content_type = gateway.metrics.render()
    return Response(body, content_type=content_type)
