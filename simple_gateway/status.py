"""Operational endpoints: liveness, a status summary, Prometheus metrics."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Response, jsonify

from simple_gateway import __version__
from simple_gateway.runtime import current_gateway

bp = Blueprint("status", __name__)


@bp.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@bp.get("/status")
def status() -> Response:
    gateway = current_gateway()
    settings = gateway.settings
    records: dict[str, object] = {"enabled": settings.records_enabled}
    if gateway.metrics is not None:
        records["totals"] = gateway.metrics.record_counters()
    if gateway.writer is not None:
        records["this_worker"] = gateway.writer.stats
    return jsonify(
        version=__version__,
        uptime_seconds=round(time.time() - gateway.started_at, 1),
        pid=os.getpid(),
        providers={
            name: {"base_url": p.base_url, "prefix": p.prefix, "type": type(p).__name__}
            for name, p in gateway.router.providers.items()
        },
        default_provider=settings.default_provider,
        config_file=settings.source,
        in_flight=len(gateway.live),
        records=records,
        settings=settings.summary(),
    )


@bp.get("/metrics")
def metrics() -> Response:
    gateway = current_gateway()
    if gateway.metrics is None:
        return Response("metrics are disabled (METRICS_ENABLED=false)\n", status=404)
    body, content_type = gateway.metrics.render()
    return Response(body, content_type=content_type)
