"""The dashboard: pages under /dashboard and a read-only JSON API under /api, behind a login.

`register_dashboard` adds both blueprints to the app; `banner_lines` is what the start
banner prints about it (once, in the process that starts the workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simple_gateway.dashboard.auth import resolve_credentials
from simple_gateway.settings import Settings

if TYPE_CHECKING:  # the master prints the banner without importing Flask
    from flask import Flask


def register_dashboard(app: Flask, settings: Settings) -> None:
    from simple_gateway.dashboard.api import bp as api_bp
    from simple_gateway.dashboard.pages import bp as pages_bp
    from simple_gateway.dashboard.service import EXTENSION, Dashboard

    app.extensions[EXTENSION] = Dashboard(settings)
    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp)


def banner_lines(settings: Settings, base_url: str) -> list[str]:
    """How to reach and log in to the dashboard; generates the admin token on a first start.

    The start that generates the token shows it; later starts name the file holding it.
    """
    address = f"dashboard: {base_url.rstrip('/')}/dashboard"
    credentials, created = resolve_credentials(settings)
    if credentials.user:
        return [f"{address} (log in as {credentials.user} with ADMIN_PASSWORD)"]
    if credentials.token_file is None:
        return [f"{address} (log in with ADMIN_TOKEN)"]
    if created:
        return [
            f"{address}",
            f"dashboard admin token (generated, saved in {credentials.token_file}): "
            f"{credentials.token}",
        ]
    return [f"{address} (admin token in {credentials.token_file})"]
