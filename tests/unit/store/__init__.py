"""Helpers shared by the store tests: realistic rows and throw-away PostgreSQL databases."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest

from simple_gateway.records.model import BodyCapture, FileRef, Outcome, Record, iso
from simple_gateway.store.base import Store
from simple_gateway.store.migrate import MIGRATIONS_ROOT
from simple_gateway.store.sqlite import SqliteStore

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BASE_TS = 1_795_000_000.0  # 2026-11-18T11:06:40Z: fixed, so days and orders are predictable

# About 1 KB of body text per exchange, as in a short chat completion.
_REQUEST_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": "Summarise the attached meeting notes in three lines. " * 7,
            },
        ],
        "temperature": 0.2,
    }
).encode()
_RESPONSE_TEXT = (
    "The team agreed to ship on Friday, to freeze the schema, and to review costs. " * 2
)
_RESPONSE_BODY = json.dumps(
    {
        "id": "chatcmpl-0123456789",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _RESPONSE_TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 181, "completion_tokens": 96, "total_tokens": 277},
    }
).encode()


def make_record(n: int = 0, **overrides: Any) -> Record:
    """A completed chat exchange like the gateway records, `n` seconds after BASE_TS."""
    started = BASE_TS + n
    fields: dict[str, Any] = {
        "id": f"01KTEST{n:019d}",
        "request_id": f"req-{n}",
        "started_at": started,
        "first_byte_at": started + 0.35,
        "ended_at": started + 1.2,
        "provider": "openai",
        "method": "POST",
        "path": "/v1/chat/completions",
        "upstream_url": "https://api.openai.com/v1/chat/completions",
        "status": 200,
        "client_addr": "10.0.0.7",
        "user_agent": "OpenAI/Python 1.54.0",
        "request_headers": {"content-type": "application/json", "authorization": "[redacted]"},
        "response_headers": {"content-type": "application/json", "x-request-id": "abc"},
        "request_body": BodyCapture(
            inline=_REQUEST_BODY, size=len(_REQUEST_BODY), content_type="application/json"
        ),
        "response_body": BodyCapture(
            inline=_RESPONSE_BODY, size=len(_RESPONSE_BODY), content_type="application/json"
        ),
        "bytes_in": len(_REQUEST_BODY),
        "bytes_out": len(_RESPONSE_BODY),
        "response_sha256": "0" * 64,
        "model": "gpt-4o-mini",
        "response_text": _RESPONSE_TEXT,
        "input_tokens": 181,
        "output_tokens": 96,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "response",
        "cost_usd": 0.0000847,
        "cost_status": "priced",
        "outcome": Outcome.COMPLETED,
    }
    fields.update(overrides)
    return Record(**fields)


def make_row(n: int = 0, **overrides: Any) -> dict[str, Any]:
    return make_record(n, **overrides).to_row()


def make_file(record: Record, n: int = 0, **overrides: Any) -> FileRef:
    """A response-body file of `record`, created when the exchange ended."""
    fields: dict[str, Any] = {
        "id": f"{record.id}F{n}",
        "record_id": record.id,
        "direction": "response",
        "kind": "body",
        "path": f"{record.provider}/2026-11-18/{record.id}-response-{n}.json",
        "content_type": "application/json",
        "size": 1024,
        "sha256": "f" * 64,
        "created_at": iso(record.ended_at or record.started_at) or "",
    }
    fields.update(overrides)
    return FileRef(**fields)


def sample_exchanges() -> list[Record]:
    """Exchanges over two UTC days for the views: successes, failures, an unpriced model."""
    day = 86_400
    long_text = "word " * 100
    return [
        make_record(0),
        make_record(60, response_text=long_text),
        make_record(120, response_text=None),
        make_record(
            180,
            status=500,
            outcome=Outcome.UPSTREAM_ERROR,
            error_kind="upstream_status",
            error_message="Internal Server Error",
            response_text=None,
            input_tokens=None,
            output_tokens=None,
            cached_tokens=None,
            reasoning_tokens=None,
            cost_usd=None,
            cost_status="no_usage",
        ),
        make_record(
            240,
            outcome=Outcome.CLIENT_DISCONNECTED,
            error_kind="client_disconnected",
            error_message="the client went away",
        ),
        make_record(
            day,
            provider="anthropic",
            path="/v1/messages",
            model="claude-sonnet-4",
            input_tokens=1000,
            output_tokens=500,
            cached_tokens=200,
            reasoning_tokens=50,
            cost_usd=0.0105,
        ),
        make_record(day + 60, model="ft:gpt-4o-mini:acme", cost_usd=None, cost_status="unpriced"),
        make_record(day + 120, status=404, error_kind=None, outcome=Outcome.COMPLETED),
    ]


def check_purges(store: Store) -> None:
    """The purge contract, shared by every store: which rows go and which file paths come back."""
    r0, r1, r2, r3 = (make_record(n * 100) for n in range(4))
    r1.request_id = r3.request_id = "client-chosen-id"  # x-request-id can repeat
    linked = make_file(r1, 1, record_id="unrelated")
    r1.response_body.file = linked
    after_cutoff = iso(BASE_TS + 160) or ""  # so only the link to a request can remove them
    linked.created_at = after_cutoff
    files = [
        make_file(r0, 0, created_at=after_cutoff),  # record_id is r0's id
        linked,  # named by r1.response_file_id only
        make_file(r1, 2, created_at=after_cutoff),  # record_id is r1's id
        make_file(r0, 9, record_id="orphan-old", created_at=iso(BASE_TS - 10) or ""),
        make_file(r2, 0),
        make_file(r3, 0),
        # An x-request-id is not a link: files.record_id joins requests.id only.
        make_file(r0, 1, record_id=r0.request_id, created_at=after_cutoff),
        make_file(r0, 7, record_id="client-chosen-id", created_at=after_cutoff),
        make_file(r0, 8, record_id="orphan-new", created_at=iso(BASE_TS + 1000) or ""),
    ]
    store.write_batch([r.to_row() for r in (r0, r1, r2, r3)], [asdict(f) for f in files])

    removed = store.purge_before(iso(BASE_TS + 150) or "")
    assert sorted(removed) == sorted(f.path for f in files[:4])
    assert store.count() == 2
    assert store.purge_before(iso(BASE_TS + 150) or "") == []

    assert store.purge_keep_newest(5) == []
    assert store.purge_keep_newest(1) == [files[4].path]
    assert store.count() == 1
    assert store.purge_keep_newest(0) == [files[5].path]
    assert store.count() == 0

    twins = [make_record(500), make_record(500)]  # same start: the larger id counts as newer
    twins[1].id = twins[0].id + "Z"
    twin_files = [make_file(t) for t in twins]
    store.write_batch([t.to_row() for t in twins], [asdict(f) for f in twin_files])
    assert store.purge_keep_newest(1) == [twin_files[0].path]
    assert store.count() == 1
    with pytest.raises(ValueError):
        store.purge_keep_newest(-1)
    with pytest.raises(ValueError):
        store.purge_before("last tuesday")


def postgres_admin_url() -> str:
    """The test server's URL; skips the test when it is unreachable, unless CI=true."""
    try:
        psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        cause = (str(exc).strip().splitlines() or ["no answer"])[0]
        reason = f"PostgreSQL is not reachable on 127.0.0.1:5432 ({cause})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return POSTGRES_ADMIN_URL


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its URL."""
    admin_url = postgres_admin_url()
    name = f"sg_test_{uuid.uuid4().hex[:12]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        # A connection of its own: the server may have been restarted during the test.
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def sqlite_store_before_0006(folder: Path, name: str) -> SqliteStore:
    """A SQLite store (not migrated yet) whose migrations stop at 0005, as an older gateway's.

    Its file is `folder / name`; the migration scripts are copied under `folder`.
    """
    older = folder / "migrations" / "sqlite"
    older.mkdir(parents=True)
    for script in sorted((MIGRATIONS_ROOT / "sqlite").glob("000[1-5]_*.sql")):
        shutil.copy(script, older)
    return SqliteStore(str(folder / name), migrations_root=folder / "migrations")
