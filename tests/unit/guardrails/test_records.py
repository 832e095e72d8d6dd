"""Guardrail runs are written with their record, in both stores, and through the spool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]

from simple_gateway.records.model import GuardrailRun, Record
from simple_gateway.records.spool import Spool
from simple_gateway.records.writer import RecordWriter
from simple_gateway.store.postgres import PostgresStore
from simple_gateway.store.sqlite import SqliteStore
from tests.polling import wait_for_count
from tests.unit.store import fresh_postgres_database

DURATIONS = [3.0, 1.0, 7.5, 2.25, 10.0, 4.0, 0.5]


def records() -> list[Record]:
    out = []
    for index, duration in enumerate(DURATIONS):
        record = Record(
            id=f"r{index}", request_id=f"q{index}", started_at=1_700_000_000.0 + index,
            provider="openai", method="POST", path="/v1/chat/completions",
        )  # fmt: skip
        verdict = ("pass", "block", "error", "timeout", "pass", "cancelled", "pass")[index]
        record.guardrail_runs.append(
            GuardrailRun(
                id=f"g{index}", started_at=record.started_at, guardrail="pii", type="pii",
                stage="input", priority=0, verdict=verdict, enforced=True, duration_ms=duration,
                original_text="a\x00b" if index == 0 else None,
            )
        )  # fmt: skip
        if verdict == "block":
            record.blocked_by = "pii"
        out.append(record)
    return out


def rows_of(batch: list[Record]) -> tuple[list[dict], list[dict]]:
    return [r.to_row() for r in batch], [row for r in batch for row in r.related_rows()]


SUMMARY = (
    "SELECT guardrail, stage, runs, blocks, errors, timeouts, p50_ms, p95_ms FROM guardrail_summary"
)


def test_sqlite_and_postgresql_summaries_agree_on_the_same_rows(tmp_path: Path) -> None:
    requests, related = rows_of(records())
    sqlite_store = SqliteStore(str(tmp_path / "g.db"))
    try:
        sqlite_store.migrate()
        sqlite_store.write_batch(requests, related)
    finally:
        sqlite_store.close()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        from_sqlite = conn.execute(SUMMARY).fetchall()
        blocked = conn.execute("SELECT id FROM requests WHERE blocked_by = 'pii'").fetchall()
        stored = conn.execute("SELECT original_text FROM guardrail_runs WHERE id='g0'").fetchone()
    # nearest rank over the six durations that are not cancelled: 0.5 1 2.25 3 7.5 10
    assert from_sqlite == [("pii", "input", 7, 1, 1, 1, 2.25, 10.0)]
    assert blocked == [("r1",)]
    assert stored == ("a\\u0000b",)
    with fresh_postgres_database() as url:
        store = PostgresStore(url)
        try:
            store.migrate()
            store.write_batch(requests, related)
            store.write_batch(requests, related)  # replayed: nothing doubles
        finally:
            store.close()
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(SUMMARY)
                from_postgres = [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()
    assert from_postgres == from_sqlite


def test_runs_of_a_spooled_record_arrive_when_the_database_is_back(tmp_path: Path) -> None:
    db = tmp_path / "data" / "g.db"
    db.parent.mkdir()
    db.mkdir()  # a directory where the file should be: the store cannot open it
    writer = RecordWriter(
        lambda: SqliteStore(str(db)), Spool(tmp_path / "spool"), flush_interval=0.01
    )
    writer.start()
    try:
        for record in records():
            writer.submit(record)
        assert writer.flush(30)
        assert writer.stats["spooled"] == len(DURATIONS)
        db.rmdir()  # the database can be opened now: the spool is replayed
        replayed = wait_for_count(lambda: writer.stats["replayed"], len(DURATIONS), timeout=30)
        assert replayed == len(DURATIONS)
    finally:
        writer.stop(1)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM guardrail_runs").fetchone() == (len(DURATIONS),)
        assert conn.execute("SELECT count(*) FROM requests").fetchone() == (len(DURATIONS),)
