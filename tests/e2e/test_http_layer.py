"""What every response carries, whoever produced it: the forwarder, a page, or the HTTP layer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from tests.gateway import GatewayProcess
from tests.polling import wait_for_count

ULID_LENGTH = 26


def rows_with_request_id(gateway: GatewayProcess, request_id: str) -> int:
    db = Path(gateway.env["DB_PATH"])
    if not db.exists():
        return -1
    with sqlite3.connect(db, timeout=10) as conn:
        sql = "select count(*) from requests where request_id = ?"
        return int(conn.execute(sql, (request_id,)).fetchone()[0])


# -- x-request-id on every response ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/status", 200),
        ("GET", "/metrics", 200),
        ("GET", "/no/such/page", 404),
        ("POST", "/health", 405),
        ("POST", "/v1/chat/completions", 200),
    ],
)
def test_every_kind_of_response_carries_a_request_id(gateway, method, path, status):
    response = requests.request(method, f"{gateway.url}{path}", json={"model": "m"})
    assert response.status_code == status
    assert len(response.headers["x-request-id"]) == ULID_LENGTH


@pytest.mark.parametrize("path", ["/health", "/no/such/page", "/v1/chat/completions"])
def test_pages_echo_a_valid_client_id_and_replace_an_invalid_one(gateway, path):
    ok = requests.post(f"{gateway.url}{path}", json={}, headers={"x-request-id": "client.id:7"})
    assert ok.headers["x-request-id"] == "client.id:7"
    bad = requests.post(f"{gateway.url}{path}", json={}, headers={"x-request-id": "bad id"})
    assert len(bad.headers["x-request-id"]) == ULID_LENGTH


def test_a_recorded_rejection_carries_the_id_its_response_showed(gateway):
    response = requests.get(f"{gateway.url}/nowhere/v1/models")
    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert wait_for_count(lambda: rows_with_request_id(gateway, request_id), 1, 30) == 1
