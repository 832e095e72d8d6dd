"""Nobody sees a byte of the dashboard without credentials; sessions end when they should."""

from __future__ import annotations

import base64
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from simple_gateway.app import create_app
from simple_gateway.dashboard.auth import SESSION_COOKIE, TOKEN_FILE
from simple_gateway.dashboard.guard import PUBLIC_ENDPOINTS
from simple_gateway.settings import load_settings
from tests.conftest import upstream_env
from tests.e2e.dashboard_helpers import ADMIN_TOKEN, bearer, form_csrf, get_when_ready, login
from tests.gateway import ROOT, GatewayProcess
from tests.upstream import MockUpstream

PROTECTED_BLUEPRINTS = ("dashboard", "api")


def protected_routes() -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) of every dashboard and API route in the app's URL map."""
    app = create_app(load_settings({}, dotenv_path=None))
    routes = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if blueprint not in PROTECTED_BLUEPRINTS or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = rule.rule
        for argument in rule.arguments:
            url = url.replace(f"<{argument}>", "x").replace(f"<path:{argument}>", "x")
        url = re.sub(r"<[^>]+>", "x", url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, url))
    return routes


def test_the_url_map_has_the_routes_this_test_guards() -> None:
    endpoints = {endpoint for endpoint, _, _ in protected_routes()}
    assert {"dashboard.index", "dashboard.detail", "api.requests_list", "api.file"} <= endpoints
    assert len(endpoints) >= 12


@pytest.fixture(scope="module")
def guarded_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("dashboard-auth")
    env = {**upstream_env(upstream), "ADMIN_TOKEN": ADMIN_TOKEN, "WORKERS": "2"}
    with GatewayProcess(workdir, env) as gateway:
        yield gateway


@pytest.mark.parametrize(("endpoint", "method", "url"), protected_routes())
def test_every_dashboard_and_api_route_refuses_without_credentials(
    guarded_gateway: GatewayProcess, endpoint: str, method: str, url: str
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Cookie": f"{SESSION_COOKIE}=forged"},
    ):
        response = requests.request(
            method, guarded_gateway.url + url, headers=headers, allow_redirects=False, timeout=10
        )
        if endpoint.startswith("api."):
            assert response.status_code == 401, (url, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
        else:
            assert response.status_code == 302, (url, headers, response.text)
            assert "/dashboard/login" in response.headers["Location"]
        assert ADMIN_TOKEN not in response.text


def test_login_needs_its_csrf_token_and_logout_ends_every_copy_of_the_session(
    guarded_gateway: GatewayProcess,
) -> None:
    base = guarded_gateway.url
    no_csrf = requests.post(f"{base}/dashboard/login", data={"token": ADMIN_TOKEN}, timeout=30)
    assert no_csrf.status_code == 401 and SESSION_COOKIE not in no_csrf.cookies

    session = login(base)
    cookie = session.cookies.get(SESSION_COOKIE)
    assert cookie
    page = session.get(f"{base}/dashboard/", timeout=10)
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    raw_cookie = next(c for c in session.cookies if c.name == SESSION_COOKIE)
    assert raw_cookie.has_nonstandard_attr("HttpOnly")
    copy = {SESSION_COOKIE: cookie}
    # Both workers accept the session.
    for _ in range(6):
        assert requests.get(f"{base}/api/requests", cookies=copy, timeout=10).status_code == 200

    refused = session.post(f"{base}/dashboard/logout", allow_redirects=False, timeout=10)
    assert refused.status_code == 403  # no CSRF token
    csrf = form_csrf(page.text)
    out = session.post(
        f"{base}/dashboard/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10
    )
    assert out.status_code == 302
    for _ in range(6):  # whichever worker answers, the copied cookie no longer works
        assert requests.get(f"{base}/api/requests", cookies=copy, timeout=10).status_code == 401
        page = requests.get(f"{base}/dashboard/", cookies=copy, allow_redirects=False, timeout=10)
        assert page.status_code == 302


def test_login_redirects_only_within_the_dashboard(guarded_gateway: GatewayProcess) -> None:
    for target, expected in (
        ("https://evil.example/", "/dashboard/"),
        ("//evil.example/x", "/dashboard/"),
        ("/dashboard/usage?range=7d", "/dashboard/usage?range=7d"),
    ):
        session = requests.Session()
        page = session.get(f"{guarded_gateway.url}/dashboard/login", timeout=10)
        response = session.post(
            f"{guarded_gateway.url}/dashboard/login",
            data={"csrf_token": form_csrf(page.text), "token": ADMIN_TOKEN, "next": target},
            allow_redirects=False,
            timeout=30,
        )
        assert response.headers.get("Location") == expected, response.text


def test_status_accepts_the_admin_token(guarded_gateway: GatewayProcess) -> None:
    plain = requests.get(f"{guarded_gateway.url}/status", timeout=10).json()
    assert "providers" not in plain
    full = requests.get(f"{guarded_gateway.url}/status", headers=bearer(), timeout=10)
    assert full.status_code == 200 and "providers" in full.json()
    wrong = requests.get(f"{guarded_gateway.url}/status", headers=bearer("nope"), timeout=10)
    assert wrong.status_code == 401
    session = login(guarded_gateway.url)
    assert "providers" in session.get(f"{guarded_gateway.url}/status", timeout=10).json()


def test_generated_token_is_shared_by_workers_and_printed_once(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    gateway = start_gateway({"WORKERS": "2"}, name="first")
    token_file = gateway.workdir / "data" / TOKEN_FILE
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    log = gateway.logs()
    assert log.count(token) == 1, log
    assert log.count("dashboard: http://") == 1
    for _ in range(6):  # every worker knows the same token (503: records not migrated yet)
        response = requests.get(f"{gateway.url}/api/requests", headers=bearer(token), timeout=10)
        assert response.status_code in (200, 503), response.text
        wrong = requests.get(f"{gateway.url}/api/requests", headers=bearer("x" + token), timeout=10)
        assert wrong.status_code == 401
    gateway.stop()
    env = {k: v for k, v in gateway.env.items() if k != "PORT"}
    again = GatewayProcess(gateway.workdir, env).start()
    try:
        log = again.stderr_path.read_text()
        assert token not in log
        assert str(token_file) in log
        response = requests.get(f"{again.url}/api/requests", headers=bearer(token), timeout=10)
        assert response.status_code in (200, 503), response.text
    finally:
        again.stop()


def test_user_and_password_login_and_basic_auth(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    gateway = start_gateway({"ADMIN_USER": "ada", "ADMIN_PASSWORD": "correct horse"})
    basic = base64.b64encode(b"ada:correct horse").decode()
    ok = get_when_ready(
        None, f"{gateway.url}/api/requests", headers={"Authorization": f"Basic {basic}"}
    )
    assert ok.status_code == 200
    wrong = base64.b64encode(b"ada:wrong").decode()
    refused = requests.get(
        f"{gateway.url}/api/requests", headers={"Authorization": f"Basic {wrong}"}, timeout=10
    )
    assert refused.status_code == 401
    session = requests.Session()
    page = session.get(f"{gateway.url}/dashboard/login", timeout=10)
    assert 'name="password"' in page.text
    response = session.post(
        f"{gateway.url}/dashboard/login",
        data={"csrf_token": form_csrf(page.text), "user": "ada", "password": "correct horse"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    assert get_when_ready(session, f"{gateway.url}/api/requests").status_code == 200
    assert not (gateway.workdir / "data" / TOKEN_FILE).exists()


def test_a_user_without_a_password_stops_the_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simple_gateway"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ADMIN_USER": "ada"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ADMIN_PASSWORD" in result.stderr
