"""Every exchange is recorded, nothing is lost, nothing secret is kept (SQLite)."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, quote_plus

import openai
import requests

from tests.gateway import GatewayProcess
from tests.polling import wait_for_count
from tests.upstream import binary_sha256


def query(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, args))


def wait_rows(db: Path, expected: int, timeout: float = 30.0, where: str = "1=1") -> int:
    """Poll the database until it holds `expected` request rows (bounded)."""

    def count() -> int:
        if not db.exists():  # connecting would create it
            return -1
        return int(query(db, f"select count(*) from requests where {where}")[0][0])

    return wait_for_count(count, expected, timeout)


def db_of(gateway: GatewayProcess) -> Path:
    return Path(gateway.env["DB_PATH"])


def test_sdk_exchanges_are_recorded_with_usage_and_cost(start_gateway):
    gateway = start_gateway()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test-usage-123", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    stream = client.chat.completions.create(
        model="unknown-model-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.embeddings.create(model="text-embedding-3-small", input="x")
    assert wait_rows(db_of(gateway), 3) == 3

    rows = {r["model"]: r for r in query(db_of(gateway), "select * from requests")}
    plain = rows["gpt-4o-mini"]
    assert plain["request_id"] == raw.headers["x-request-id"]
    assert plain["status"] == 200 and plain["outcome"] == "completed"
    assert (plain["input_tokens"], plain["output_tokens"]) == (11, 7)
    assert (plain["cached_tokens"], plain["reasoning_tokens"]) == (3, 2)
    assert plain["cost_status"] == "priced" and plain["cost_usd"] > 0
    assert plain["response_text"] == "Hello from mock"
    assert plain["stream"] == 0 and plain["ttfb_ms"] <= plain["duration_ms"]
    assert '"authorization": "[REDACTED] sha256:' in plain["request_headers"]

    streamed_row = rows["unknown-model-x"]
    assert streamed_row["stream"] == 1
    assert streamed_row["response_text"] == streamed
    assert streamed_row["output_tokens"] == 7
    assert streamed_row["usage_source"].startswith("stream")
    assert streamed_row["cost_usd"] is None and streamed_row["cost_status"] == "unpriced"
    assert streamed_row["response_body"].rstrip().endswith("data: [DONE]")

    assert rows["text-embedding-3-small"]["input_tokens"] is not None
    views = {
        name: query(db_of(gateway), f"select * from {name}")
        for name in ("recent_requests", "usage_by_model_day", "recent_errors")
    }
    assert len(views["recent_requests"]) == 3
    assert {r["model"] for r in views["usage_by_model_day"]} >= {"gpt-4o-mini", "unknown-model-x"}


def test_failed_requests_are_recorded_too(start_gateway):
    gateway = start_gateway({"MAX_REQUEST_BODY_MB": "1"})
    requests.post(f"{gateway.url}/v1/echo", data=b"x" * (2 * 1024 * 1024))
    requests.post(f"{gateway.url}/nope/v1/chat", json={})
    requests.post(
        f"{gateway.url}/v1/chat/completions", json={"model": "m"}, headers={"x-mock-status": "500"}
    )
    assert wait_rows(db_of(gateway), 3) == 3
    rows = {r["status"]: r for r in query(db_of(gateway), "select * from recent_errors")}
    assert rows[413]["error_kind"] == "request_too_large"
    assert rows[413]["outcome"] == "gateway_error"
    assert rows[404]["error_kind"] == "unknown_route"
    assert rows[500]["outcome"] == "upstream_error"


def test_canary_key_never_lands_anywhere(start_gateway):
    canary = "sk-canary-" + hashlib.sha256(str(random.random()).encode()).hexdigest()[:24]
    gateway = start_gateway()
    secret_headers = {
        "Authorization": f"Bearer {canary}",
        "x-api-key": canary,
        "api-key": canary,
        "x-goog-api-key": canary,
        "Cookie": f"session={canary}",
        "x-custom-token": canary,
        "Proxy-Authorization": f"Basic {canary}",
    }
    requests.post(
        f"{gateway.url}/v1/chat/completions?key={canary}&api_key={canary}",
        json={"model": "gpt-4o", "messages": []},
        headers={
            **secret_headers,
            "x-mock-status": "401",
            "x-mock-error-body": json.dumps(
                {"error": {"message": f"Incorrect API key provided: {canary}"}}
            ),
        },
    )
    requests.post(
        f"{gateway.url}/v1/chat/completions?token={canary}",
        json={"model": "gpt-4o", "messages": [], "stream": True},
        headers=secret_headers,
    )
    requests.get(f"{gateway.url}/v1/binary/400000?secret={canary}", headers=secret_headers)
    assert wait_rows(db_of(gateway), 3) == 3
    stored = query(db_of(gateway), "select query, request_headers, response_body from requests")
    assert any("[REDACTED]" in r["query"] for r in stored)
    assert any(
        "Incorrect API key provided: [REDACTED]" in (r["response_body"] or "") for r in stored
    )

    def leaks() -> list[str]:
        found = [
            str(p)
            for p in gateway.workdir.rglob("*")
            if p.is_file() and canary.encode() in p.read_bytes()
        ]
        return found

    assert leaks() == []  # database, its WAL, files, spool and the logs
    gateway.stop()
    assert leaks() == []


def test_a_key_echoed_back_in_another_encoding_is_not_stored(start_gateway):
    random_part = hashlib.sha256(str(random.random()).encode()).hexdigest()[:24]
    canary = f"sk-canary_{random_part}/end"
    gateway = start_gateway()
    echoes = [
        quote(f"Bearer {canary}", safe="").replace("_", "%5F"),
        quote_plus(f"Bearer {canary}", safe="").replace("%2F", "%2f"),
        json.dumps(canary)[1:-1].replace("/", "\\/"),
        canary.replace("_", "\\u005f"),
    ]
    for echo in echoes:
        requests.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": []},
            headers={
                "Authorization": f"Bearer {canary}",
                "x-mock-status": "401",
                "x-mock-error-body": f'{{"error": {{"message": "bad key {echo}"}}}}',
            },
        )
    assert wait_rows(db_of(gateway), len(echoes)) == len(echoes)
    stored = [r["response_body"] for r in query(db_of(gateway), "select * from requests")]
    assert all("bad key [REDACTED] sha256:" in body for body in stored), stored
    gateway.stop()
    leaks = [
        str(p)
        for p in gateway.workdir.rglob("*")
        if p.is_file() and random_part.encode() in p.read_bytes()
    ]
    assert leaks == []


def test_key_fields_of_a_json_body_are_redacted_in_the_record_but_sent_as_they_are(
    start_gateway,
):
    gateway = start_gateway()
    body = json.dumps(
        {"model": "m", "max_tokens": 5, "api_key": "sk-body-key-123", "opts": {"apiKey": "k-99"}}
    ).encode()
    response = requests.post(
        f"{gateway.url}/v1/echo", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()  # sent unchanged
    assert wait_rows(db_of(gateway), 1) == 1
    stored = json.loads(query(db_of(gateway), "select request_body from requests")[0][0])
    assert stored["api_key"].startswith("[REDACTED] sha256:")
    assert stored["opts"]["apiKey"].startswith("[REDACTED] sha256:")
    assert (stored["model"], stored["max_tokens"]) == ("m", 5)


def test_forwarded_client_address_is_recorded_only_from_trusted_proxies(start_gateway):
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    plain = start_gateway(name="plain")
    requests.get(f"{plain.url}/v1/models", headers=spoofed)
    behind = start_gateway({"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}, name="behind-proxy")
    requests.get(f"{behind.url}/v1/models", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.5"})
    for gateway, expected in ((plain, "127.0.0.1"), (behind, "203.0.113.9")):
        assert wait_rows(db_of(gateway), 1) == 1
        assert query(db_of(gateway), "select client_addr from requests")[0][0] == expected


def test_binaries_land_as_files_with_correct_digests(start_gateway):
    gateway = start_gateway()
    size = 20 * 1024 * 1024
    with requests.get(f"{gateway.url}/v1/binary/{size}", stream=True) as response:
        for _ in response.iter_content(1 << 20):
            pass
    upload = requests.Request(
        "POST",
        f"{gateway.url}/v1/audio/transcriptions",
        files={"file": ("a.wav", random.randbytes(size), "audio/wav")},
        data={"model": "whisper-1"},
    ).prepare()
    upload_digest = hashlib.sha256(upload.body).hexdigest()
    with requests.Session() as session:
        assert session.send(upload).status_code == 200
    assert wait_rows(db_of(gateway), 2) == 2

    files = {
        r["direction"]: r
        for r in query(db_of(gateway), "select * from files where kind = 'body' and size > 1000000")
    }
    assert files["response"]["sha256"] == binary_sha256(size)
    assert files["response"]["size"] == size
    assert files["request"]["sha256"] == upload_digest
    assert files["request"]["content_type"].startswith("multipart/form-data")
    for row in files.values():
        path = Path(gateway.env["FILE_STORAGE_PATH"]) / row["path"]
        assert path.name.startswith(row["record_id"])
        joined = query(
            db_of(gateway),
            "select requests.id from files join requests on files.record_id = requests.id "
            f"where files.id = '{row['id']}'",
        )
        assert [j["id"] for j in joined] == [row["record_id"]]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    download = query(db_of(gateway), "select * from requests where path like '/v1/binary/%'")[0]
    assert download["response_sha256"] == binary_sha256(size)
    assert download["response_file_id"] == files["response"]["id"]


def test_nul_bytes_and_broken_utf8_are_recorded(start_gateway):
    gateway = start_gateway()
    body = b'{"model": "m", "text": "nul\x00here and \xff\xfe broken"}'
    response = requests.post(
        f"{gateway.url}/v1/echo", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert wait_rows(db_of(gateway), 1) == 1
    row = query(db_of(gateway), "select * from requests")[0]
    assert "nul" in row["request_body"] and "broken" in row["request_body"]
    assert row["request_body_size"] == len(body)


def test_2000_mixed_requests_through_4_workers_give_exactly_2000_rows(start_gateway):
    gateway = start_gateway({"WORKERS": "4", "ACCESS_LOG": "false"})
    kinds = [
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []}, {}),
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [], "stream": True}, {}),
        ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, {}),
        ("POST", "/v1/chat/completions", {"model": "m"}, {"x-mock-status": "429"}),
        ("GET", "/v1/binary/2048", None, {}),
        ("GET", "/v1/models", None, {}),
    ]
    local = threading.local()

    def send(i: int) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        method, path, body, headers = kinds[i % len(kinds)]
        return session.request(method, gateway.url + path, json=body, headers=headers).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, range(2000)))
    assert statuses.count(429) == sum(1 for i in range(2000) if i % len(kinds) == 3)
    assert wait_rows(db_of(gateway), 2000, timeout=60) == 2000
    assert gateway.stop() == 0
    assert query(db_of(gateway), "select count(*), count(distinct id) from requests")[0][:] == (
        2000,
        2000,
    )


def test_sigterm_with_streams_in_flight_records_every_one(start_gateway):
    gateway = start_gateway({"GRACEFUL_TIMEOUT": "4"})
    ready = threading.Barrier(9)

    def stream(chunks: int) -> None:
        try:
            response = requests.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "m", "messages": [], "stream": True},
                headers={"x-mock-chunks": str(chunks), "x-mock-chunk-delay-ms": "100"},
                stream=True,
                timeout=30,
            )
            parts = response.iter_content(None)
            next(parts)
            ready.wait(10)
            for _ in parts:
                pass
        except requests.RequestException:
            pass  # the long streams are cut at the deadline

    with ThreadPoolExecutor(8) as pool:
        for chunks in [10] * 4 + [300] * 4:
            pool.submit(stream, chunks)
        ready.wait(10)
        gateway.signal(signal.SIGTERM)
    assert gateway.process is not None and gateway.process.wait(15) == 0
    rows = query(db_of(gateway), "select outcome, count(*) from requests group by outcome")
    outcomes = {r[0]: r[1] for r in rows}
    assert outcomes == {"completed": 4, "interrupted": 4}


def test_a_client_that_leaves_mid_upload_is_recorded(start_gateway, upstream):
    gateway = start_gateway()
    with socket.create_connection(("127.0.0.1", gateway.port)) as client:
        client.sendall(
            b"POST /v1/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 4000000\r\n\r\n" + b"z" * 1_500_000
        )
    assert wait_rows(db_of(gateway), 1) == 1
    row = query(db_of(gateway), "select * from requests")[0]
    assert row["status"] == 400
    assert row["error_kind"] == "bad_request"
    assert row["request_body_size"] >= 1_000_000
