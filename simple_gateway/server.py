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

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from simple_gateway.ids import new_id
from simple_gateway.metrics import MULTIPROCESS_ENV, mark_process_dead, prepare_multiprocess_dir
from simple_gateway.preflight import preflight
from simple_gateway.settings import Settings, SettingsError, load_settings
from simple_gateway.worker import GatewayWorker, drain_margin, raise_open_file_limit

INSTANCE_ENV = "SIMPLE_GATEWAY_INSTANCE_ID"
METRICS_DIR_ENV = MULTIPROCESS_ENV
WAITING_CONNECTIONS = 10_000
__all__ = ["GatewayApplication", "GatewayWorker", "gunicorn_options", "prepare_master", "run"]


def prepare_master() -> None:
    """Process-wide set-up in the master, before any worker exists.

    prometheus_client picks multi-process mode when it is first imported, from the
    environment, so the directory must be named before any worker imports it.
    """
    raise_open_file_limit()  # inherited by every worker
    os.environ.setdefault(INSTANCE_ENV, new_id())
    if not os.environ.get(METRICS_DIR_ENV):
        os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="simple-gateway-metrics-")
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
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }


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
    if os.path.basename(directory).startswith("simple-gateway-metrics-"):
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


def run() -> None:
    try:
        settings = load_settings()
        preflight(settings)
    except SettingsError as exc:
        print(f"simple-gateway: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    prepare_master()
    records = (settings.database_url and "PostgreSQL") or settings.db_path
    print(
        f"simple-gateway listening on http://{_bracket(settings.host)}:{settings.port} "
        f"({settings.workers} workers x {settings.threads} threads); "
        f"records: {records if settings.records_enabled else 'off'}",
        file=sys.stderr,
        flush=True,
    )
    print_dashboard_banner(settings)
    GatewayApplication(settings).run()


def print_dashboard_banner(settings: Settings) -> None:
    """The dashboard's address and how to log in; once per start, from the master."""
    from simple_gateway.dashboard import banner_lines

    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "[::]") else settings.host
    base_url = f"http://{_bracket(shown_host)}:{settings.port}"
    for line in banner_lines(settings, base_url):
        print(f"simple-gateway {line}", file=sys.stderr, flush=True)
