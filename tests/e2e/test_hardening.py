"""Faults and bad input at the edges: oversized chunked uploads, dot-segment paths, full disks,
killed workers, readiness, stale metrics folders, multipart form fields."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import requests

from tests.e2e.test_records import db_of, query, wait_rows


def error_of(response: requests.Response) -> dict[str, str]:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]  # type: ignore[no-any-return]


def files_on_disk(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_chunked_upload_over_the_limit_never_reaches_the_provider_whole(start_gateway, upstream):
    gateway = start_gateway({"MAX_REQUEST_BODY_MB": "1"})
    tag = "chunked-over-limit"

    def chunked():  # no Content-Length: the limit is enforced while the body streams
        for _ in range(40):
            yield b"y" * 65536

    response = requests.post(
        f"{gateway.url}/v1/audio/transcriptions",
        data=chunked(),
        headers={"Content-Type": "application/octet-stream", "x-mock-tag": tag},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"

    seen = upstream.wait_for(lambda r: r.tag == tag, timeout=30)
    assert not seen.body_complete  # cut off before the final chunk: no request to act on
    assert seen.body_size <= 1024 * 1024

    assert wait_rows(db_of(gateway), 1) == 1
    (row,) = query(db_of(gateway), "select * from requests")
    assert row["status"] == 413 and row["error_kind"] == "request_too_large"
    assert row["request_file_id"] is None
    assert "not kept" in row["error_message"]
    assert query(db_of(gateway), "select * from files") == []
    assert files_on_disk(Path(gateway.env["FILE_STORAGE_PATH"])) == []


DOT_PATHS = [
    "/openai/../anthropic/v1/messages",
    "/openai/%2e%2e/anthropic/v1/messages",
    "/openai/%2E%2E/anthropic/v1/messages",
    "/v1/./chat/completions",
    "/v1/chat/completions/..",
    "/openai/v1/..%2f..%2fv1/chat/completions",
]


def test_paths_with_dot_segments_are_refused_recorded_and_never_forwarded(start_gateway, upstream):
    gateway = start_gateway()
    tag = "dot-segments"
    for path in DOT_PATHS:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        try:  # http.client sends the path as given; requests would normalise it first
            conn.request("POST", path, body=b'{"model": "x"}', headers={"x-mock-tag": tag})
            response = conn.getresponse()
            body = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 400, path
        assert response.getheader("Content-Type") == "application/json"
        assert body["error"]["type"] == "invalid_request_error"
        assert "dot-segment" in body["error"]["message"]

    assert wait_rows(db_of(gateway), len(DOT_PATHS)) == len(DOT_PATHS)
    rows = query(db_of(gateway), "select path, status, outcome, error_message from requests")
    assert sorted(r["path"] for r in rows) == sorted(DOT_PATHS)
    assert {(r["status"], r["outcome"]) for r in rows} == {(400, "gateway_error")}
    ordinary = requests.post(f"{gateway.url}/v1/echo", data=b"{}", headers={"x-mock-tag": tag})
    assert ordinary.status_code == 200
    assert [r.path for r in upstream.requests if r.tag == tag] == ["/v1/echo"]
