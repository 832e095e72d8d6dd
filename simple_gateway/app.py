"""The app factory: builds the Flask app and the worker's services; starts nothing.

Provider routes (`/v1/*`, `/<provider>/*`) are dispatched to the forwarder by a thin
WSGI middleware in front of Flask's routing (`app.wsgi_app`, Flask's own extension
point for middleware): the proxy path is the hot path and needs none of Flask's
request machinery, while every other page (health, status, metrics and later the
dashboard) is an ordinary blueprint.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from simple_gateway import errors
from simple_gateway.dashboard import register_dashboard
from simple_gateway.ids import new_id, stamp_responses
from simple_gateway.proxy.forwarder import raw_path
from simple_gateway.proxy.paths import unsafe_path
from simple_gateway.ready import bp as ready_bp
from simple_gateway.runtime import Gateway, current_gateway
from simple_gateway.settings import Settings, load_settings
from simple_gateway.status import bp as status_bp

INSTANCE_ENV = "SIMPLE_GATEWAY_INSTANCE_ID"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    instance_id = os.environ.get(INSTANCE_ENV) or new_id()
    gateway = Gateway(settings, instance_id)
    app.extensions["simple_gateway"] = gateway
    app.register_blueprint(status_bp)
    app.register_blueprint(ready_bp)
    register_dashboard(app, settings)
    app.register_error_handler(HTTPException, _render_http_error)
    app.wsgi_app = ProxyDispatcher(gateway, app.wsgi_app)  # type: ignore[method-assign]
    return app


class ProxyDispatcher:
    """Sends provider routes to the forwarder and everything else to Flask.

    The forwarder gives its responses their x-request-id itself; every other response
    (pages, 404, 405, errors before any route was found) gets one here, once for all.
    """

    def __init__(self, gateway: Gateway, fallback: WSGIApp) -> None:
        self.gateway = gateway
        self.router = gateway.router
        self.forwarder = gateway.forwarder
        self.fallback = fallback

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        segment = unsafe_path(environ)
        if segment is not None:
            return self._refuse_path(environ, stamp_responses(environ, start_response), segment)
        route = self.router.route(raw_path(environ), environ.get("QUERY_STRING", ""))
        if route is None:
            return self.fallback(environ, stamp_responses(environ, start_response))
        if not self.gateway.started:
            self.gateway.start()  # servers without the worker hooks start it on first use
        return self.forwarder(environ, start_response, route)

    def _refuse_path(
        self, environ: dict[str, Any], start_response: Callable[..., Any], segment: str
    ) -> Iterable[bytes]:
        error = errors.BadRequest(
            f"the request path has a dot-segment ({segment!r}); paths are forwarded as they "
            "are, so '.' and '..' segments (plain or percent-encoded) are refused"
        )
        self.forwarder.record_rejection(environ, error)
        start_response(f"{error.status} Bad Request", errors.error_headers(error))
        return [error.body()]


def _render_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        known = ", ".join(f"/{name}/" for name in current_gateway().router.providers)
        error: errors.GatewayError = errors.NotFound(
            f"no route for {request.path}: use /v1/... for the default provider or one of {known}"
        )
    else:
        code = exc.name.lower().replace(" ", "_")
        error = errors.for_status(status, code, exc.description or exc.name)
    current_gateway().forwarder.record_rejection(request.environ, error)
    return Response(error.body(), status=status, content_type="application/json")


def configure_logging(level: str) -> None:
    """Gateway logs to stderr, the access log to stdout; only once per process."""
    package = logging.getLogger("simple_gateway")
    if getattr(package, "_configured", False):
        return
    package.setLevel(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    package.addHandler(handler)
    package.propagate = False
    access = logging.getLogger("simple_gateway.access")
    access_handler = logging.StreamHandler(sys.stdout)
    access_handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(message)s"))
    access.addHandler(access_handler)
    access.propagate = False
    package._configured = True  # type: ignore[attr-defined]
