"""Readiness: `/ready` answers 503 while this worker should get no traffic.

`/health` says the process is alive; `/ready` says whether sending it requests is wise: not
while it drains for a stop, and not while a finished exchange's record could be neither
stored in the database nor appended to the spool (it would only be held in memory). A
database that is down alone does not make the gateway unready: records wait in the spool.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from simple_gateway.runtime import current_gateway

bp = Blueprint("ready", __name__)


@bp.get("/ready")
def ready() -> Response:
    gateway = current_gateway()
    writer = gateway.writer
    reasons = []
    if gateway.draining:
        reasons.append("the worker is draining for a stop")
    records = "disabled"
    if writer is not None:
        stats = writer.stats
        records = "stored" if stats["store_available"] else "spooled"
        if not writer.can_keep_records():
            records = "held"
            reasons.append(
                "records can be neither stored in the database nor spooled "
                f"(held in memory: {stats['held']})"
            )
    response = jsonify(status="not_ready" if reasons else "ready", records=records, reasons=reasons)
    response.status_code = 503 if reasons else 200
    return response
