"""The dashboard in a real headless Chromium: log in, watch, filter, inspect, chat, export.

Chromium is Debian's `/usr/bin/chromium`, driven by Playwright for Python (never
`playwright install`). Each page is saved as a screenshot under tests/screenshots/ (git-
ignored) for a person to look at. Without Chromium or Playwright the tests skip, unless
CI=true, where they must run.
"""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.conftest import upstream_env
from tests.e2e.dashboard_helpers import ADMIN_TOKEN, PNG_1X1, bearer, get_when_ready, wait_rows
from tests.gateway import ROOT, GatewayProcess
from tests.upstream import MockUpstream

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "screenshots"
CLIENT_KEY = "sk-browser-test-key-0123456789abcdef"
TIMEOUT_MS = 20_000
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_browser() -> Any:
    reason = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    if not reason and not os.path.exists(CHROMIUM):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return sync_playwright


class Canary:
    """An HTTP server that counts hits: a script that ran would call it."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


GUARDRAILS = """
guardrails:
  input:
    - {name: pii, type: pii, action: redact, entities: [email], priority: 0}
    - {name: no-forbidden, type: keywords, words: [forbiddenword], action: block, priority: 0}
"""


@pytest.fixture(scope="module")
def dash_gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("dashboard-browser")
    config = workdir / "gateway.yaml"
    config.write_text(GUARDRAILS)
    env = {
        **upstream_env(upstream),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WORKERS": "2",
        "GATEWAY_CONFIG": str(config),
    }
    with GatewayProcess(workdir, env) as gateway:
        ready = get_when_ready(None, f"{gateway.url}/api/requests", headers=bearer())
        assert ready.status_code == 200, ready.text  # records migrated: pages can be read
        yield gateway


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    sync_playwright = _require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="sg-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1400, "height": 900},
            accept_downloads=True,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any, dash_gateway: GatewayProcess) -> Iterator[Any]:
    page = browser_context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    _ensure_logged_in(page, dash_gateway.url)
    yield page
    page.close()


def _ensure_logged_in(page: Any, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    if "/dashboard/login" in page.url:
        page.screenshot(path=str(SHOTS / "login.png"), full_page=True)
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/dashboard/")


def wait_true(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until it is true (bounded).

    Playwright's own wait_for_function evaluates strings with eval, which the dashboard's
    Content-Security-Policy forbids; page.evaluate goes through the debugging protocol.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.1)
    raise AssertionError(f"still false after {timeout}s: {expression}")


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def _send_image_reply(gateway: GatewayProcess) -> None:
    response = requests.post(
        f"{gateway.url}/v1/echo/image",
        headers={
            "Authorization": f"Bearer {CLIENT_KEY}",
            "x-image": f"data:image/png;base64,{PNG_1X1}",
        },
        data=b"{}",
        timeout=10,
    )
    assert response.status_code == 200


def test_a_request_from_the_sdk_appears_live_then_filter_inspect_and_export(
    page: Any, dash_gateway: GatewayProcess, tmp_path: Path
) -> None:
    base = dash_gateway.url
    shown = page.locator("#rows tr.row").count()
    page.evaluate("window.__sameDocument = 'yes'")

    _client(dash_gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where does the wombat7 live?"}],
    )
    record = wait_rows(base, {"q": "wombat7"}, 1)[0]
    row = page.locator(f'#rows tr.row[data-id="{record["id"]}"]')
    row.wait_for()  # inserted by the live list, without a reload
    assert page.evaluate("window.__sameDocument") == "yes"
    assert page.locator("#rows tr.row").count() == shown + 1
    assert "gpt-4o-mini" in row.inner_text()

    _send_image_reply(dash_gateway)
    wait_true(
        page, f"document.querySelectorAll('#rows tr.row').length >= {shown + 2}", timeout=TIMEOUT_MS
    )
    page.screenshot(path=str(SHOTS / "requests.png"), full_page=True)

    page.fill("input[name=q]", "wombat7")
    page.select_option("select[name=status]", "2xx")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**q=wombat7**")
    assert "status=2xx" in page.url
    assert page.locator("#rows tr.row").count() == 1
    assert page.locator(f'#rows tr.row[data-id="{record["id"]}"]').count() == 1
    page.screenshot(path=str(SHOTS / "requests-filtered.png"), full_page=True)

    page.goto(f"{base}/dashboard/?path=%2Fecho")
    page.locator("#rows tr.row td.path a").first.click()
    page.wait_for_url("**/dashboard/requests/**")
    preview = page.locator("img.preview").first
    preview.wait_for()
    wait_true(
        page,
        "document.querySelector('img.preview').complete && "
        "document.querySelector('img.preview').naturalWidth > 0",
    )
    assert "$API_KEY" in page.locator("#curl").inner_text()
    assert CLIENT_KEY not in page.content()
    page.screenshot(path=str(SHOTS / "detail.png"), full_page=True)

    page.goto(f"{base}/dashboard/requests/{record['id']}")
    assert "wombat7" in page.locator("#request-body").inner_text()
    page.screenshot(path=str(SHOTS / "detail-chat.png"), full_page=True)

    page.goto(f"{base}/dashboard/?q=wombat7")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    exported = tmp_path / "export.csv"
    download_info.value.save_as(exported)
    lines = exported.read_text().splitlines()
    assert lines[0].startswith("id,request_id,started_at")
    assert len(lines) == 2 and record["id"] in lines[1]
    assert page.console_errors == []


def test_playground_streams_a_reply_that_links_to_its_record(
    page: Any, dash_gateway: GatewayProcess
) -> None:
    base = dash_gateway.url
    page.goto(f"{base}/dashboard/playground")
    page.fill("input[name=key]", CLIENT_KEY)
    page.fill("textarea[name=system]", "You are terse.")
    page.fill("textarea[name=message]", "Say hello to the platypus9")
    page.click("#playground button[type=submit]")
    reply = page.locator(".msg.assistant .text").last
    wait_true(
        page,
        "document.querySelector('.msg.assistant .text') && "
        "document.querySelector('.msg.assistant .text').textContent.includes('tok4')",
    )
    assert reply.inner_text().startswith("tok0 tok1")
    link = page.locator(".msg.assistant a.record-link").last
    link.wait_for()
    assert page.evaluate("window.localStorage.length") == 0  # "remember" was not ticked
    page.screenshot(path=str(SHOTS / "playground.png"), full_page=True)

    wait_rows(base, {"q": "platypus9"}, 1)
    link.click()
    page.wait_for_url("**/dashboard/requests/**")
    assert "platypus9" in page.locator("#request-body").inner_text()
    assert "You are terse." in page.locator("#request-body").inner_text()

    page.goto(f"{base}/dashboard/playground")
    page.select_option("select[name=api]", "messages")
    page.select_option("select[name=provider]", "anthropic")
    page.fill("input[name=model]", "claude-test")
    page.fill("textarea[name=message]", "Hello via messages")
    page.click("#playground button[type=submit]")
    wait_true(page, "[...document.querySelectorAll('.msg.assistant .meta')].length > 0")
    assert "failed" not in (page.locator(".msg.assistant").last.get_attribute("class") or "")


def test_usage_and_guardrails_pages_render(page: Any, dash_gateway: GatewayProcess) -> None:
    base = dash_gateway.url
    _client(dash_gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "usagecheck7 please"}]
    )
    wait_rows(base, {"q": "usagecheck7"}, 1)
    page.goto(f"{base}/dashboard/usage?range=1h")
    page.locator("#chart-rate canvas").wait_for()
    page.locator("#chart-latency canvas").wait_for()
    by_model = page.locator("table.list").first.inner_text()
    assert "gpt-4o\t" in by_model or "gpt-4o\n" in by_model, by_model
    page.screenshot(path=str(SHOTS / "usage.png"), full_page=True)
    client = _client(dash_gateway)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "mail ada@example.com about the invoice"}],
    )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me a forbiddenword"}]
        )
    wait_rows(base, {"outcome": "blocked"}, 1)
    page.goto(f"{base}/dashboard/guardrails?range=1h")
    assert page.locator("h1").inner_text() == "Guardrails"
    summary = page.locator("table.list").first.inner_text()
    assert "no-forbidden" in summary and "pii" in summary
    recent = page.locator("article.verdict")
    assert recent.count() >= 2
    page.screenshot(path=str(SHOTS / "guardrails.png"), full_page=True)
    page.goto(f"{base}/dashboard/?outcome=blocked")
    page.locator("#rows tr.row td.path a").first.click()
    page.wait_for_url("**/dashboard/requests/**")
    assert "no-forbidden" in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / "detail-blocked.png"), full_page=True)
    assert page.console_errors == []


def test_html_in_prompts_and_replies_never_runs(page: Any, dash_gateway: GatewayProcess) -> None:
    base = dash_gateway.url
    canary = Canary()
    try:
        payload = (
            f"<script>window.__pwned = 'script'; fetch('{canary.url}/script')</script>"
            f"<img src=x onerror=\"window.__pwned = 'img'; new Image().src = '{canary.url}/img'\">"
        )
        client = _client(dash_gateway)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"xsstest {payload}"}]
        )
        error_body = '{"error": {"message": "xsstest ' + payload.replace('"', '\\"') + '"}}'
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "xsstest reply"}],
                extra_headers={"x-mock-status": "400", "x-mock-error-body": error_body},
            )
        echoed = requests.post(
            f"{base}/v1/echo/xsstest", headers={**bearer(CLIENT_KEY), "x-evil": payload}, timeout=10
        )
        assert echoed.status_code == 200
        rows = wait_rows(base, {"q": "xsstest"}, 2)
        echo_rows = wait_rows(base, {"path": "/echo/xsstest"}, 1)

        page.goto(f"{base}/dashboard/?q=xsstest")
        for row in [*rows, *echo_rows]:
            page.goto(f"{base}/dashboard/requests/{row['id']}")
            text = page.locator("main").inner_text()
            assert "window.__pwned" in text  # shown, as text
            assert page.evaluate("typeof window.__pwned") == "undefined"
        page.screenshot(path=str(SHOTS / "detail-inert-html.png"), full_page=True)
        page.goto(f"{base}/dashboard/")
        page.evaluate("window.__sameDocument = 'yes'")
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"xsslive {payload}"}]
        )
        newest = wait_rows(base, {"q": "xsslive"}, 1)[0]
        page.locator(f'#rows tr.row[data-id="{newest["id"]}"]').wait_for()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("window.__sameDocument") == "yes"
        assert canary.hits == []
    finally:
        canary.close()
