"""What every response carries, whoever produced it: the forwarder, a page, or the HTTP layer."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

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


def test_an_error_before_routing_carries_a_request_id(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(b"GET /openai/../anthropic/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = parse_response(sock.recv(65536))
    assert status == 400
    request_id = headers["x-request-id"]
    assert len(request_id) == ULID_LENGTH
    assert wait_for_count(lambda: rows_with_request_id(gateway, request_id), 1, 30) == 1


def test_a_recorded_rejection_carries_the_id_its_response_showed(gateway):
    response = requests.get(f"{gateway.url}/nowhere/v1/models")
    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert wait_for_count(lambda: rows_with_request_id(gateway, request_id), 1, 30) == 1


# -- errors gunicorn raises before the app runs, in the gateway's JSON shape ----------------


def exchange_raw(gateway: GatewayProcess, data: bytes, timeout: float = 30) -> bytes:
    """Send `data` on a fresh connection and read until the gateway closes it."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", 431, None),
        (b"GET /" + b"a" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, None),
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/7.0\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ],
    ids=["huge-header", "long-request-line", "garbage", "bad-header-name", "bad-version"],
)
def test_http_layer_errors_are_json_with_a_request_id(gateway, request_bytes, status, code):
    got_status, headers, body = parse_response(exchange_raw(gateway, request_bytes))
    assert got_status == status
    assert headers["content-type"] == "application/json"
    assert len(headers["x-request-id"]) == ULID_LENGTH
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("malformed request")
    if code:
        assert error["code"] == code
    assert int(headers["content-length"]) == len(body)


def test_a_malformed_request_is_recorded_under_the_id_it_was_answered_with(gateway):
    _, headers, _ = parse_response(exchange_raw(gateway, b"GET / HTTP/7.0\r\nHost: x\r\n\r\n"))
    request_id = headers["x-request-id"]
    assert wait_for_count(lambda: rows_with_request_id(gateway, request_id), 1, 30) == 1


# -- request heads are read without holding a thread (slowloris) ------------------------------


def test_a_head_that_never_completes_is_answered_408_and_closed(start_gateway):
    gateway = start_gateway({"HEADER_TIMEOUT": "1"})
    raw = exchange_raw(gateway, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    status, headers, body = parse_response(raw)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert len(headers["x-request-id"]) == ULID_LENGTH


def test_a_head_with_bare_line_feeds_is_answered_at_once(gateway):
    status, _, _ = parse_response(exchange_raw(gateway, b"GET /health HTTP/1.0\n\n", timeout=5))
    assert status in (200, 400)


def test_a_head_larger_than_the_limit_is_431(gateway):
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
    status, _, body = parse_response(exchange_raw(gateway, b"GET / HTTP/1.1\r\n" + lines))
    assert status == 431
    assert json.loads(body)["error"]["code"] == "request_headers_too_large"


def test_keep_alive_and_pipelined_requests_still_work(gateway):
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        file = sock.makefile("rb")
        sock.sendall(request)
        assert file.readline().startswith(b"HTTP/1.1 200")
        read_rest_of_response(file)
        sock.sendall(request * 2)  # two requests in one segment
        for _ in range(2):
            assert file.readline().startswith(b"HTTP/1.1 200")
            read_rest_of_response(file)
        # a head split across several segments
        for part in (b"GET /hea", b"lth HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            sock.sendall(part)
        assert file.readline().startswith(b"HTTP/1.1 200")


def read_rest_of_response(file: Any) -> None:
    length = 0
    while (line := file.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    file.read(length)


SLOW_CLIENTS = 3_000


def test_thousands_of_slow_heads_leave_normal_requests_served(start_gateway):
    """Far more half-sent heads than threads: before, each held a thread and the rest waited."""
    gateway = start_gateway({"THREADS": "32", "HEADER_TIMEOUT": "60"})
    held: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        response = requests.post(
            f"{gateway.url}/v1/chat/completions", json={"model": "m"}, timeout=30
        )
        assert response.status_code == 200
        assert requests.get(f"{gateway.url}/health", timeout=30).status_code == 200
        # the slow clients are still connected, waiting: none was answered or dropped
        held[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            held[0].recv(1)
    finally:
        for sock in held:
            sock.close()
