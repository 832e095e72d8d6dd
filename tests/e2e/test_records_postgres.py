"""Records in PostgreSQL (DATABASE_URL): the same rows, and nothing lost across a restart."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import psycopg2  # type: ignore[import-untyped]
import pytest
import requests

from tests.polling import wait_for_count
from tests.unit.store import postgres_admin_url


def pg_query(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(url, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def _admin(sql: str) -> None:
    conn = psycopg2.connect(postgres_admin_url(), connect_timeout=3)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh database (skipped without a server unless CI=true), dropped afterwards."""
    admin = postgres_admin_url()
    name = f"sg_e2e_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        _wait_for_postgres(30)
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_count(url: str, expected: int, timeout: float = 60.0) -> int:
    def count() -> int:
        return int(pg_query(url, "select count(*) from requests")[0][0])

    return wait_for_count(count, expected, timeout, interval=0.2)


def _wait_for_postgres(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pg_query(postgres_admin_url(), "select 1")
            return
        except psycopg2.Error:
            time.sleep(0.2)
    raise TimeoutError("PostgreSQL did not come back")


def restart_postgres() -> None:
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster on this machine")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "restart"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    _wait_for_postgres(30)


def test_records_land_in_postgresql_with_usage(start_gateway, database_url):
    gateway = start_gateway({"DATABASE_URL": database_url})
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test-pg-1234", max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    requests.post(f"{gateway.url}/v1/echo", data=b'{"t": "nul\x00 and \xff bytes"}')
    assert wait_count(database_url, 2) == 2
    rows = pg_query(
        database_url,
        "select model, input_tokens, output_tokens, cost_status, request_headers->>'authorization'"
        " from requests where path = '/v1/chat/completions'",
    )
    model, input_tokens, output_tokens, cost_status, auth = rows[0]
    assert (model, input_tokens, output_tokens, cost_status) == ("gpt-4o-mini", 11, 7, "priced")
    assert auth.startswith("[REDACTED] sha256:")
    echo = pg_query(database_url, "select request_body from requests where path = '/v1/echo'")
    assert "bytes" in echo[0][0]
    for view in ("recent_requests", "usage_by_model_day", "recent_errors"):
        pg_query(database_url, f"select * from {view}")


def test_postgresql_restart_under_load_loses_and_duplicates_nothing(start_gateway, database_url):
    gateway = start_gateway({"DATABASE_URL": database_url, "WORKERS": "2", "ACCESS_LOG": "false"})
    stop = threading.Event()
    answered = [0] * 6

    def load(slot: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(
                    f"{gateway.url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": []},
                    timeout=10,
                )
                assert response.status_code == 200
                answered[slot] += 1

    with ThreadPoolExecutor(len(answered)) as pool:
        futures = [pool.submit(load, slot) for slot in range(len(answered))]
        assert wait_count(database_url, 200, timeout=30) >= 200
        restart_postgres()
        before_stop = sum(answered)
        deadline = time.monotonic() + 30
        while sum(answered) < before_stop + 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # keep the load on for a while after the restart
        stop.set()
        for future in futures:
            future.result(30)
    sent = sum(answered)
    assert wait_count(database_url, sent, timeout=60) == sent
    total, distinct = pg_query(database_url, "select count(*), count(distinct id) from requests")[0]
    assert (total, distinct) == (sent, sent)
    status = gateway.status()
    totals = status["records"]["totals"]
    assert totals["written"] + totals["replayed"] == sent  # each row counted once, where it went
    assert totals["failed"] == 0
