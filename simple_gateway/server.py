"""Serving under gunicorn: gthread defaults for streaming, and the worker lifecycle.

design: the app is built in each worker after the fork (never in the master), and
the worker's threads start in `post_worker_init`. On SIGTERM a worker stops accepting,
lets in-flight exchanges run until shortly before the graceful timeout, interrupts
whatever still runs (recording it as interrupted) and spends the remaining margin
draining its record writer; the master kills workers at the graceful timeout.

Both entry points share these defaults: `python -m simple_gateway` through
`GatewayApplication`, and `gunicorn wsgi:app` through `gunicorn.conf.py`.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from simple_gateway import __version__
from simple_gateway.ids import new_id
from simple_gateway.metrics import (
    MULTIPROCESS_ENV,
    TEMP_DIR_PREFIX,
    mark_process_dead,
    new_multiprocess_dir,
    prepare_multiprocess_dir,
)
from simple_gateway.redaction import hide_database_password
from simple_gateway.settings import Settings
from simple_gateway.worker import GatewayWorker, drain_margin, raise_open_file_limit

INSTANCE_ENV = "SIMPLE_GATEWAY_INSTANCE_ID"
METRICS_DIR_ENV = MULTIPROCESS_ENV
WAITING_CONNECTIONS = 10_000
__all__ = ["GatewayApplication", "GatewayWorker", "gunicorn_options", "prepare_master", "serve"]


def prepare_master() -> None:
    """Process-wide set-up in the master, before any worker exists.

    prometheus_client picks multi-process mode when it is first imported, from the
    environment, so the directory must be named before any worker imports it.
    """
    raise_open_file_limit()  # inherited by every worker
    os.environ.setdefault(INSTANCE_ENV, new_id())
    if not os.environ.get(METRICS_DIR_ENV):
        os.environ[METRICS_DIR_ENV] = str(new_multiprocess_dir())
    prepare_multiprocess_dir(Path(os.environ[METRICS_DIR_ENV]))


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": [f"{_bracket(settings.host)}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "simple_gateway.worker.GatewayWorker",
        "threads": settings.threads,
        # Connections beyond the threads wait in the event loop (idle or sending their head).
        "worker_connections": settings.threads + WAITING_CONNECTIONS,
        # gthread's heartbeat comes from its event loop, not from requests: a long stream
        # never trips it; it only catches a worker whose loop is stuck.
        "timeout": 120,
        "graceful_timeout": math.ceil(settings.graceful_timeout),
        "keepalive": math.ceil(settings.keepalive),
        "backlog": 2048,
        "loglevel": settings.log_level,
        "accesslog": None,
        "preload_app": False,
        "control_socket_disable": True,  # one fixed path per user: instances would collide
        "when_ready": _banner_hook(settings),
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }


def describe_records(settings: Settings) -> str:
    """Where records go, with absolute paths and no password."""
    if not settings.records_enabled:
        return "off (RECORDS_ENABLED=false)"
    if settings.database_url:
        kind = "SQLite" if settings.database_url.lower().startswith("sqlite:") else "PostgreSQL"
        return f"{kind} {hide_database_password(settings.database_url)}"
    return f"SQLite {os.path.abspath(settings.db_path)}"


def describe_config(settings: Settings) -> str:
    return "none" if settings.source == "defaults" else os.path.abspath(settings.source)


def banner(settings: Settings, addresses: list[str]) -> str:
    """What the master prints once its port is bound, before any worker starts."""
    lines = [
        f"simple-gateway {__version__} listening on {', '.join(addresses)} "
        f"({settings.workers} workers x {settings.threads} threads)",
        f"  config:  {describe_config(settings)}",
        f"  records: {describe_records(settings)}",
    ]
    if settings.records_enabled:
        lines += [
            f"  files:   {os.path.abspath(settings.file_storage_path)}",
            f"  spool:   {os.path.abspath(settings.spool_path)}",
        ]
    return "\n".join(lines)


def _banner_hook(settings: Settings) -> Callable[[Any], None]:
    """gunicorn's `when_ready`: runs once in the master, after the listeners are bound."""

    def when_ready(server: Any) -> None:
        addresses = [str(listener) for listener in getattr(server, "LISTENERS", [])]
        print(banner(settings, addresses), file=sys.stderr, flush=True)
        print_dashboard_banner(settings)

    return when_ready


class AddressInUse(RuntimeError):
    """Another process listens on the configured address."""


def check_address_free(host: str, port: int) -> None:
    """Raise AddressInUse when (host, port) cannot be bound, as gunicorn would bind it.

    gunicorn retries a busy port for several seconds with a log line each time; this fails
    at once with one line instead.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise AddressInUse(f"cannot resolve HOST '{host}': {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise AddressInUse(
                f"cannot listen on {_bracket(host)}:{port}: {reason} "
                "(another instance? choose another PORT or --port)"
            ) from None


def post_worker_init(worker: Any) -> None:
    gateway = _gateway_of(worker)
    if gateway is not None:
        gateway.start()


def worker_exit(server: Any, worker: Any) -> None:
    gateway = _gateway_of(worker)
    if gateway is not None:
        gateway.stop(timeout=max(0.5, drain_margin(float(worker.cfg.graceful_timeout)) - 0.5))


def child_exit(server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = os.environ.get(METRICS_DIR_ENV, "")
    if os.path.basename(directory).startswith(TEMP_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def _gateway_of(worker: Any) -> Any:
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None) or {}
    return extensions.get("simple_gateway")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class GatewayApplication(BaseApplication):  # type: ignore[misc]
    """`python -m simple_gateway`: gunicorn with the gateway's defaults."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from simple_gateway.app import create_app  # in the worker, after the fork

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    """Run the gateway under gunicorn until it is stopped; settings already checked."""
    check_address_free(settings.host, settings.port)
    prepare_master()
    GatewayApplication(settings).run()


def print_dashboard_banner(settings: Settings) -> None:
    """The dashboard's address and how to log in; once per start, from the master."""
    from simple_gateway.dashboard import banner_lines

    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "[::]") else settings.host
    base_url = f"http://{_bracket(shown_host)}:{settings.port}"
    for line in banner_lines(settings, base_url):
        print(f"simple-gateway {line}", file=sys.stderr, flush=True)
