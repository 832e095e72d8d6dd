"""Pages rendered from a database holding every kind of related row (in-process client)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from simple_gateway.app import create_app
from simple_gateway.settings import load_settings
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import make_record

TOKEN = "unit-admin-token-123456"
SCRIPT = "<script>window.__pwned=1</script>"


@pytest.fixture
def seeded(tmp_path: Path) -> dict[str, Any]:
    db_path = tmp_path / "data" / "gateway.db"
    store = SqliteStore(str(db_path))
    store.migrate()
    record = make_record(1)
    row = record.to_row()
    row.update(
        alias="fast",
        deployment="openai/gpt-4o-mini",
        attempts=2,
        request_headers=json.dumps({"authorization": "Bearer sk-should-never-show-123456"}),
        response_text=f"reply {SCRIPT}",
    )
    store.write_batch([row], [])
    store.close()
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO guardrail_runs (id, record_id, started_at, guardrail, type, stage, "
            "priority, verdict, enforced, reason, duration_ms, original_text, override_text) "
            "VALUES ('g1', ?, ?, 'pii', 'pii', 'output', 0, 'redact', 1, 'found email', 1.5, "
            "?, 'mail <EMAIL>')",
            (row["id"], row["started_at"], f"mail ada@example.com {SCRIPT}"),
        )
        conn.execute(
            "INSERT INTO attempts (id, record_id, attempt, deployment, provider, model, "
            "started_at, duration_ms, status, outcome, error_kind) VALUES "
            "('a1', ?, 1, 'azure/gpt-4o-mini', 'azure', 'gpt-4o-mini', ?, 12, 503, 'failed_over', "
            "'upstream'), ('a2', ?, 2, 'openai/gpt-4o-mini', 'openai', 'gpt-4o-mini', ?, 30, 200, "
            "'answered', NULL)",
            (row["id"], row["started_at"], row["id"], row["started_at"]),
        )
    conn.close()
    settings = load_settings(
        {"DB_PATH": str(db_path), "ADMIN_TOKEN": TOKEN, "FILE_STORAGE_PATH": str(tmp_path / "f")},
        dotenv_path=None,
    )
    return {"app": create_app(settings), "id": row["id"]}


def logged_in(app: Any) -> FlaskClient:
    client: FlaskClient = app.test_client()
    page = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    response = client.post("/dashboard/login", data={"csrf_token": csrf.group(1), "token": TOKEN})
    assert response.status_code == 302
    return client


def test_detail_shows_guardrails_routing_and_escapes_record_text(seeded: dict[str, Any]) -> None:
    client = logged_in(seeded["app"])
    page = client.get(f"/dashboard/requests/{seeded['id']}")
    assert page.status_code == 200
    html = page.text
    assert "azure/gpt-4o-mini" in html and "failed_over" in html
    assert "openai/gpt-4o-mini" in html and "fast" in html
    assert "found email" in html and "mail &lt;EMAIL&gt;" in html
    assert SCRIPT not in html and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "sk-should-never-show" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_api_detail_carries_the_related_rows(seeded: dict[str, Any]) -> None:
    client = seeded["app"].test_client()
    body = client.get(
        f"/api/requests/{seeded['id']}", headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_json()
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]
    assert body["guardrail_runs"][0]["verdict"] == "redact"
    assert body["request"]["alias"] == "fast"
    assert "sk-should-never-show" not in json.dumps(body)


def test_guardrails_page_shows_original_beside_replacement(seeded: dict[str, Any]) -> None:
    client = logged_in(seeded["app"])
    # make_record's exchanges are from 2026-11-18; a custom range reaches them.
    html = client.get("/dashboard/guardrails?since=2026-11-01T00:00&until=2026-12-31T00:00").text
    assert "pii" in html and "mail ada@example.com" in html and "mail &lt;EMAIL&gt;" in html
    assert SCRIPT not in html
