"""Faults and bad input at the edges: oversized chunked uploads, dot-segment paths, full disks,
killed workers, readiness, stale metrics folders, multipart form fields."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import psycopg2  # type: ignore[import-untyped]
import pytest
import requests

from tests.e2e.test_records import db_of, query, wait_rows
from tests.polling import wait_for_count
from tests.unit.store import postgres_admin_url

STATUS_AUTH = {"Authorization": "Bearer status-token-for-tests"}


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


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A folder on a tmpfs of `size`: a disk that really fills up (needs root to mount)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; deleting it frees the space again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
    return filler


def test_a_full_disk_keeps_no_partial_files_and_records_why(start_gateway, tmp_path):
    with small_disk(tmp_path / "files", "512k") as disk:
        gateway = start_gateway({"FILE_STORAGE_PATH": str(disk)})
        for _ in range(5):
            download = requests.get(f"{gateway.url}/v1/binary/1000000")
            assert download.status_code == 200 and len(download.content) == 1_000_000
        upload = requests.post(
            f"{gateway.url}/v1/echo",
            data=b"z" * 2_000_000,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert upload.status_code == 200

        assert wait_rows(db_of(gateway), 6) == 6
        rows = query(db_of(gateway), "select * from requests order by id")
        for row in rows[:5]:
            assert row["response_file_id"] is None
            assert "response body not kept on disk: No space left" in row["error_message"]
            assert row["outcome"] == "completed"
        assert "request body not kept on disk: No space left" in rows[5]["error_message"]
        assert query(db_of(gateway), "select * from files") == []
        assert files_on_disk(disk) == []
        logged = [line for line in gateway.logs().splitlines() if "cannot keep" in line]
        assert len(logged) == 1, logged  # one line a minute for one kind of error


def test_records_neither_database_nor_spool_can_take_are_shown_as_held(start_gateway, tmp_path):
    with small_disk(tmp_path / "data", "4m") as disk:
        gateway = start_gateway(
            {
                "DB_PATH": str(disk / "gateway.db"),
                "SPOOL_PATH": str(disk / "spool"),
                "FILE_STORAGE_PATH": str(tmp_path / "files"),
                "STATUS_TOKEN": STATUS_AUTH["Authorization"].split()[1],
            }
        )
        assert requests.post(f"{gateway.url}/v1/echo", data=b"{}").status_code == 200
        assert wait_rows(db_of(gateway), 1) == 1
        filler = fill(disk)

        for _ in range(5):
            assert requests.post(f"{gateway.url}/v1/echo", data=b"x" * 5000).status_code == 200

        def held() -> int:
            metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
            (value,) = re.findall(r"^gateway_records_held (\S+)$", metrics, re.M)
            return int(float(value))

        def held_in_status() -> int:
            status = requests.get(f"{gateway.url}/status", headers=STATUS_AUTH, timeout=10)
            return int(status.json()["records"]["this_worker"]["held"])

        assert wait_for_count(held, 5, timeout=60) == 5
        assert held_in_status() == 5
        not_ready = requests.get(f"{gateway.url}/ready", timeout=10)
        assert not_ready.status_code == 503
        assert not_ready.json()["records"] == "held"
        assert requests.get(f"{gateway.url}/health", timeout=10).status_code == 200

        os.unlink(filler)
        assert wait_rows(db_of(gateway), 6, timeout=60) == 6
        assert wait_for_count(lambda: 1 - held(), 1, timeout=30) == 1
        assert held_in_status() == 0
        assert requests.get(f"{gateway.url}/ready", timeout=10).status_code == 200


def test_a_worker_killed_before_its_writer_flushes_loses_no_record(start_gateway):
    gateway = start_gateway({"WRITER_FLUSH_INTERVAL": "600", "WORKERS": "1"})
    (worker,) = gateway.worker_pids()
    sent = []
    for n in range(40):
        response = requests.post(f"{gateway.url}/v1/echo", data=f'{{"n": {n}}}')
        assert response.status_code == 200
        sent.append(response.headers["x-request-id"])
    assert wait_rows(db_of(gateway), 1, timeout=1) <= 0  # still waiting in the writer's queue

    os.kill(worker, signal.SIGKILL)
    assert wait_rows(db_of(gateway), len(sent), timeout=60) == len(sent)
    rows = query(db_of(gateway), "select request_id from requests")
    assert sorted(r["request_id"] for r in rows) == sorted(sent)
    assert gateway.worker_pids() != [worker]
    assert "replayed 40 records" in gateway.logs()


def test_a_missing_postgresql_database_is_explained_and_records_wait(start_gateway):
    admin = postgres_admin_url()
    name = f"sg_missing_{uuid.uuid4().hex[:12]}"
    url = admin.rsplit("/", 1)[0] + "/" + name
    gateway = start_gateway({"DATABASE_URL": url})
    try:
        assert requests.post(f"{gateway.url}/v1/echo", data=b"{}").status_code == 200
        ready = requests.get(f"{gateway.url}/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["records"] == "spooled"

        def advised() -> int:
            return int(f"createdb -h 127.0.0.1 -p 5432 {name}" in gateway.logs())

        assert wait_for_count(advised, 1, timeout=30) == 1

        admin_sql(admin, f'CREATE DATABASE "{name}"')

        def stored() -> int:
            return len(pg_rows(url, "select id from requests"))

        assert wait_for_count(stored, 1, timeout=60) == 1
        ready = requests.get(f"{gateway.url}/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["records"] == "stored"
    finally:
        gateway.stop()
        admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_sql(url: str, statement: str) -> None:
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def pg_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_metrics_folders_left_by_a_killed_gateway_are_removed_at_the_next_start(
    start_gateway, tmp_path
):
    temp = tmp_path / "tmp"
    temp.mkdir()
    killed = start_gateway({"TMPDIR": str(temp)}, name="killed")
    (left,) = temp.glob("simple-gateway-metrics-*")
    assert killed.process is not None
    for pid in [*killed.worker_pids(), killed.process.pid]:
        os.kill(pid, signal.SIGKILL)
    killed.process.wait()
    assert left.exists()

    running = start_gateway({"TMPDIR": str(temp)}, name="next")
    assert not left.exists()
    (current,) = temp.glob("simple-gateway-metrics-*")
    assert requests.get(f"{running.url}/metrics", timeout=10).status_code == 200
    running.stop()
    assert not current.exists()


def test_the_model_field_of_a_multipart_upload_is_recorded(start_gateway):
    gateway = start_gateway()
    audio = os.urandom(3 * 1024 * 1024)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test-multipart", max_retries=0)
    client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", audio, "audio/mpeg"))
    # The model after the file, as `curl -F file=@a.mp3 -F model=...` sends it.
    files = [("file", ("b.mp3", audio, "audio/mpeg")), ("model", (None, "gpt-4o-transcribe"))]
    assert requests.post(f"{gateway.url}/v1/audio/transcriptions", files=files).status_code == 200

    assert wait_rows(db_of(gateway), 2) == 2
    rows = query(db_of(gateway), "select model, request_file_id from requests order by id")
    assert [r["model"] for r in rows] == ["whisper-1", "gpt-4o-transcribe"]
    assert all(r["request_file_id"] for r in rows)  # read from the body's file, in chunks
