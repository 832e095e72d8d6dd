"""Helpers for the dashboard tests: logging in like a browser, waiting for records."""

from __future__ import annotations

import re
import time
from typing import Any

import requests

ADMIN_TOKEN = "test-admin-token-0123456789"
# A 1x1 PNG: what a reply's image looks like once decoded.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(base_url: str, token: str = ADMIN_TOKEN) -> requests.Session:
    """A session logged in through the login form (CSRF token included), as a browser does."""
    session = requests.Session()
    page = session.get(f"{base_url}/dashboard/login", timeout=10)
    csrf = form_csrf(page.text)
    response = session.post(
        f"{base_url}/dashboard/login",
        data={"csrf_token": csrf, "token": token, "next": "/dashboard/"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    return session


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def wait_rows(
    base_url: str, params: dict[str, Any], expected: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Poll the list API until it has at least `expected` rows; the rows (bounded poll)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = requests.get(
            f"{base_url}/api/requests", params=params, headers=bearer(), timeout=10
        )
        if response.status_code == 200:
            rows = response.json()["rows"]
            if len(rows) >= expected:
                return rows
        time.sleep(0.2)
    raise AssertionError(f"{len(rows)} rows for {params} after {timeout}s, wanted {expected}")


def get_when_ready(
    session: requests.Session | None, url: str, timeout: float = 30.0, **kwargs: Any
) -> requests.Response:
    """GET `url`, asking again while the records database is not migrated yet (503)."""
    getter = session.get if session is not None else requests.get
    deadline = time.monotonic() + timeout
    while True:
        response = getter(url, timeout=10, **kwargs)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)
