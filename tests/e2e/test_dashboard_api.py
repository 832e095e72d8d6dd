"""The dashboard's JSON API against a real gateway (two workers), on SQLite and PostgreSQL.

Records are made by the official OpenAI SDK through the gateway to the mock upstream; the
API must list, filter, search, page, detail, export and summarise them, with secrets masked,
whichever worker wrote them.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import psycopg2  # type: ignore[import-untyped]
import pytest
import requests

from tests.conftest import upstream_env
from tests.e2e.dashboard_helpers import ADMIN_TOKEN, PNG_1X1, bearer, wait_rows
from tests.gateway import GatewayProcess
from tests.unit.store import postgres_admin_url
from tests.upstream import MockUpstream

CLIENT_KEY = "sk-test-client-key-abcdefghijklmnop"


def _admin(sql: str) -> None:
    conn = psycopg2.connect(postgres_admin_url(), connect_timeout=3)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_gateway(
    request: pytest.FixtureRequest,
    upstream: MockUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """A two-worker gateway with an admin token, recording into SQLite or PostgreSQL."""
    env = {**upstream_env(upstream), "ADMIN_TOKEN": ADMIN_TOKEN, "WORKERS": "2"}
    name = ""
    if request.param == "postgres":
        admin = postgres_admin_url()
        name = f"sg_dash_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + name
    try:
        workdir = tmp_path_factory.mktemp(f"dashboard-{request.param}")
        with GatewayProcess(workdir, env) as gateway:
            _make_traffic(gateway.url)
            yield gateway
    finally:
        if name:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _make_traffic(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Please process the refund for order quokka42"}],
    )
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Tell me about the pelican"}],
        stream=True,
    )
    for _ in stream:
        pass
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "this one fails"}],
            extra_headers={"x-mock-status": "500"},
        )
    echoed = requests.post(
        f"{url}/v1/echo/image",
        headers={
            "Authorization": f"Bearer {CLIENT_KEY}",
            "x-image": f"data:image/png;base64,{PNG_1X1}",
        },
        data=b"{}",
        timeout=10,
    )
    assert echoed.status_code == 200
    wait_rows(url, {}, 4)


def api(gateway: GatewayProcess, route: str, **params: str) -> requests.Response:
    return requests.get(f"{gateway.url}{route}", params=params, headers=bearer(), timeout=30)


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["rows"]]


def test_list_is_newest_first_and_filters_mean_what_they_say(store_gateway: GatewayProcess) -> None:
    rows = api(store_gateway, "/api/requests").json()["rows"]
    assert len(rows) == 4
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    by_model = {
        r["model"] for r in api(store_gateway, "/api/requests", model="gpt-4o").json()["rows"]
    }
    assert by_model == {"gpt-4o"}
    errors = api(store_gateway, "/api/requests", status="5xx").json()["rows"]
    assert [r["status"] for r in errors] == [500]
    assert ids(api(store_gateway, "/api/requests", outcome="errors")) == [errors[0]["id"]]
    assert len(ids(api(store_gateway, "/api/requests", status="2xx"))) == 3
    assert len(ids(api(store_gateway, "/api/requests", path="/echo"))) == 1
    assert len(ids(api(store_gateway, "/api/requests", provider="openai"))) == 4
    assert ids(api(store_gateway, "/api/requests", provider="anthropic")) == []
    assert ids(api(store_gateway, "/api/requests", min_ms="600000")) == []
    now = datetime.now(UTC)
    recent = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
    }
    assert len(ids(api(store_gateway, "/api/requests", **recent))) == 4
    future = {"since": (now + timedelta(hours=1)).isoformat()}
    assert ids(api(store_gateway, "/api/requests", **future)) == []


def test_search_finds_prompt_and_reply_text(store_gateway: GatewayProcess) -> None:
    prompt_hits = api(store_gateway, "/api/requests", q="quokka42").json()["rows"]
    assert [r["model"] for r in prompt_hits] == ["gpt-4o-mini"]
    assert prompt_hits[0]["status"] == 200
    assert len(ids(api(store_gateway, "/api/requests", q="pelican"))) == 1
    reply_hits = ids(api(store_gateway, "/api/requests", q="mock hello"))  # assembled reply text
    assert len(reply_hits) == 1
    assert len(ids(api(store_gateway, "/api/requests", q="tok3"))) == 1  # a stream's text
    assert ids(api(store_gateway, "/api/requests", q="zyzzyva")) == []
    assert ids(api(store_gateway, "/api/requests", q="!!!")) == []
    assert len(ids(api(store_gateway, "/api/requests", q="gpt-4o"))) == 3  # gpt-4o, gpt-4o-mini
    # Operators and quotes in the text are searched for, never interpreted.
    assert ids(api(store_gateway, "/api/requests", q='quokka42" OR "x')) == []
    assert len(ids(api(store_gateway, "/api/requests", q="quokka42", status="2xx"))) == 1


def test_keyset_pages_cover_every_row_once(store_gateway: GatewayProcess) -> None:
    seen: list[str] = []
    before = ""
    while True:
        body = api(store_gateway, "/api/requests", limit="1", before=before).json()
        seen += [r["id"] for r in body["rows"]]
        before = body["next_before"] or ""
        if not before:
            break
    assert seen == ids(api(store_gateway, "/api/requests"))
    first = api(store_gateway, "/api/requests", q="gpt", limit="1").json()
    second = api(store_gateway, "/api/requests", q="gpt", limit="1", before=first["next_before"])
    assert ids(second) and ids(second) != [r["id"] for r in first["rows"]]


def test_live_poll_returns_only_newer_rows(store_gateway: GatewayProcess) -> None:
    rows = api(store_gateway, "/api/requests").json()["rows"]
    newest = rows[0]["id"]
    assert ids(api(store_gateway, "/api/requests", after=newest)) == []
    assert ids(api(store_gateway, "/api/requests", after=rows[1]["id"])) == [newest]
    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert set(ids(api(store_gateway, "/api/requests", ended_since=recent))) == {
        r["id"] for r in rows
    }


def test_detail_masks_secrets_and_offers_curl_with_a_placeholder(
    store_gateway: GatewayProcess,
) -> None:
    row = api(store_gateway, "/api/requests", q="quokka42").json()["rows"][0]
    detail = api(store_gateway, f"/api/requests/{row['id']}").json()
    text = json.dumps(detail)
    assert CLIENT_KEY not in text
    assert detail["request"]["request_headers"]["authorization"].startswith("[REDACTED]")
    assert "quokka42" in detail["request"]["request_body"]
    assert detail["request"]["response_text"].startswith("Hello from mock")
    assert detail["request"]["usage_source"]
    assert "$API_KEY" in detail["curl"] and "/v1/chat/completions" in detail["curl"]
    by_request_id = api(store_gateway, f"/api/requests/{row['request_id']}").json()
    assert by_request_id["request"]["id"] == row["id"]
    assert api(store_gateway, "/api/requests/nope").status_code == 404


def test_stream_detail_keeps_transcript_and_assembled_text(store_gateway: GatewayProcess) -> None:
    row = api(store_gateway, "/api/requests", q="pelican").json()["rows"][0]
    assert row["stream"] is True
    detail = api(store_gateway, f"/api/requests/{row['id']}").json()["request"]
    assert detail["response_body"].count("data:") >= 5
    assert detail["response_text"].startswith("tok0 tok1")


def test_image_file_is_served_by_id_inline_and_as_download(store_gateway: GatewayProcess) -> None:
    row = api(store_gateway, "/api/requests", path="/echo").json()["rows"][0]
    files = api(store_gateway, f"/api/requests/{row['id']}").json()["files"]
    images = [f for f in files if f["content_type"] == "image/png"]
    assert images, files
    response = requests.get(f"{store_gateway.url}{images[0]['url']}", headers=bearer(), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.content.startswith(b"\x89PNG")
    download = requests.get(
        f"{store_gateway.url}{images[0]['url']}",
        params={"download": "1"},
        headers=bearer(),
        timeout=10,
    )
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert api(store_gateway, "/api/files/does-not-exist").status_code == 404
    # A path with dot-segments is refused before any route sees it.
    assert api(store_gateway, "/api/files/..%2F..%2Fetc%2Fpasswd").status_code == 400


def test_export_streams_the_filtered_list(store_gateway: GatewayProcess) -> None:
    response = api(store_gateway, "/api/export", format="csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 4
    assert CLIENT_KEY not in response.text
    lines = api(store_gateway, "/api/export", format="jsonl", status="5xx").text.splitlines()
    assert [json.loads(line)["status"] for line in lines] == [500]
    with_bodies = api(store_gateway, "/api/export", format="jsonl", q="quokka42", bodies="1")
    assert "quokka42" in json.loads(with_bodies.text.splitlines()[0])["request_body"]
    assert api(store_gateway, "/api/export", format="xml").status_code == 400


def test_usage_sums_requests_tokens_and_errors(store_gateway: GatewayProcess) -> None:
    usage = api(store_gateway, "/api/usage", range="1h").json()
    assert sum(b["requests"] for b in usage["timeline"]) == 4
    assert sum(b["errors"] for b in usage["timeline"]) == 1
    assert all(b["p50_ms"] is not None and b["p95_ms"] >= b["p50_ms"] for b in usage["timeline"])
    models = {r["model"]: r for r in usage["by_model"]}
    assert models["gpt-4o-mini"]["requests"] == 2
    assert models["gpt-4o-mini"]["input_tokens"] > 0
    assert {r["provider"] for r in usage["by_provider"]} == {"openai"}
    assert api(store_gateway, "/api/usage", range="2y").status_code == 400


def test_guardrails_api_answers_with_or_without_guardrail_records(
    store_gateway: GatewayProcess,
) -> None:
    body = api(store_gateway, "/api/guardrails").json()
    assert set(body) >= {"available", "summary", "recent"}
    assert body["summary"] == []
    assert api(store_gateway, "/api/guardrails", stage="middle").status_code == 400


def test_bad_filters_are_clear_400s(store_gateway: GatewayProcess) -> None:
    for params in ({"status": "7xx"}, {"outcome": "fine"}, {"since": "yesterday"}, {"min_ms": "x"}):
        response = api(store_gateway, "/api/requests", **params)
        assert response.status_code == 400
        assert next(iter(params)) in response.json()["error"]["message"]


def test_settings_shown_by_status_hide_the_admin_token(store_gateway: GatewayProcess) -> None:
    status = requests.get(f"{store_gateway.url}/status", headers=bearer(), timeout=10)
    assert ADMIN_TOKEN not in status.text


def test_sqlite_search_index_follows_inserts_and_deletes(tmp_path: Path) -> None:
    """Rows arrive and retention deletes them; a search sees exactly the rows stored."""
    from simple_gateway.dashboard.db import open_database
    from simple_gateway.store.sqlite import SqliteStore
    from tests.unit.store import make_record

    db = open_database(None, str(tmp_path / "g.db"))

    def hits() -> int:
        db.prepare_search()  # what a search does first: index the rows the writers have not
        query = "SELECT count(*) AS n FROM requests_fts WHERE requests_fts MATCH 'meeting'"
        found = db.one(query)
        assert found is not None
        return int(found["n"])

    store = SqliteStore(str(tmp_path / "g.db"))
    try:
        store.migrate()
        store.write_batch([make_record(1).to_row(), make_record(2).to_row()], [])
        assert hits() == 2
        store.purge_keep_newest(1)
        assert hits() == 1
        store.write_batch([make_record(0).to_row()], [])  # older than the row kept
        store.purge_keep_newest(1)  # deleted before it was ever indexed
        assert hits() == 1
        store.write_batch([make_record(3).to_row()], [])
        assert hits() == 2
    finally:
        store.close()
        db.close()
