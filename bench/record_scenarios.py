"""Scenarios of the record path: the writer's throughput, and a PostgreSQL outage under load."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import requests
from psycopg2 import sql

from bench.context import Bench
from bench.http_scenarios import CHAT_PATH
from bench.load import run_pyload
from bench.pgproxy import TcpForwarder
from bench.procs import MemorySampler, Sample, dir_size
from bench.report import Outcome
from bench.stats import kib_to_mb, mb, num
from simple_gateway.ids import new_id
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.cost import PriceTable
from simple_gateway.records.enrich import Enricher
from simple_gateway.records.model import BodyCapture, Record
from simple_gateway.records.spool import Spool
from simple_gateway.records.writer import RecordWriter
from simple_gateway.store.sqlite import SqliteStore

WRITER_MIN_ROWS_PER_S = 20_000
QUEUE_SIZE = 10_000  # the writer's default, and the gateway's WRITER_QUEUE_SIZE default
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG: dict[str, Any] = {"host": PG_HOST, "port": PG_PORT, "user": "postgres"}
PG_CONNECTIONS = 8
OUTAGE_MAX_GROWTH_MB = 100.0
OUTAGE_MAX_LATE_GROWTH_MB = 10.0


def _padding(n: int, seed: int) -> str:
    words = ("gateway", "record", "token", "stream", "model", "provider", "latency", "budget")
    text = " ".join(words[(seed + i) % len(words)] for i in range(n // 7 + 1))
    return text[:n]


def make_records(n: int) -> list[Record]:
    """Chat exchanges with ~1 KB request and response bodies, as the forwarder leaves them."""
    records = []
    now = time.time()
    for i in range(n):
        request = json.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": _padding(880, i)},
                ],
                "temperature": 0.2,
            }
        ).encode()
        response = json.dumps(
            {
                "id": f"chatcmpl-{i}",
                "object": "chat.completion",
                "created": int(now),
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": _padding(720, i + 3)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 230,
                    "completion_tokens": 160,
                    "total_tokens": 390,
                    "prompt_tokens_details": {"cached_tokens": 64},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
        ).encode()
        record_id = new_id()
        records.append(
            Record(
                id=record_id,
                request_id=record_id,
                started_at=now,
                first_byte_at=now + 0.35,
                ended_at=now + 0.36,
                provider="openai",
                method="POST",
                path=CHAT_PATH,
                upstream_url=f"https://api.openai.com{CHAT_PATH}",
                status=200,
                client_addr="127.0.0.1",
                user_agent="OpenAI/Python 1.0",
                request_headers={"content-type": "application/json", "authorization": "[redacted]"},
                response_headers={"content-type": "application/json", "x-request-id": record_id},
                request_body=BodyCapture(
                    inline=request, size=len(request), content_type="application/json"
                ),
                response_body=BodyCapture(
                    inline=response, size=len(response), content_type="application/json"
                ),
                bytes_in=len(request),
                bytes_out=len(response),
                response_sha256=hashlib.sha256(response).hexdigest(),
            )
        )
    return records


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _write_records(records: list[Record], folder: Path, enrich: bool) -> dict[str, Any]:
    db = str(folder / "records.db")
    enricher = Enricher(BlobStore(folder / "files"), PriceTable.load()) if enrich else None
    record_writer = RecordWriter(
        lambda: SqliteStore(db),
        Spool(folder / "spool"),
        enrich=enricher,
        queue_size=QUEUE_SIZE,
        batch_size=500,
    )
    record_writer.start()
    try:
        if not _wait(lambda: bool(record_writer.stats["store_available"]), 30, 0.01):
            raise RuntimeError("the SQLite store never became available")
        started = time.perf_counter()
        step = 1_000
        for first in range(0, len(records), step):
            # Submit no faster than the writer drains: a full queue spills to the spool.
            if not _wait(lambda: record_writer.stats["queue_depth"] <= QUEUE_SIZE - step, 120):
                raise RuntimeError("the writer stopped draining its queue")
            for record in records[first : first + step]:
                record_writer.submit(record)
        flushed = record_writer.flush(timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        record_writer.stop(timeout=30)
    store = SqliteStore(db)
    rows = store.count()
    catchup = _index_catchup(store)
    store.close()
    stats = record_writer.stats
    return {
        "records": len(records),
        "seconds": elapsed,
        "rows_per_s": len(records) / elapsed,
        "index_catchup_s": catchup,
        "rows_per_s_indexed": len(records) / (elapsed + catchup),
        "flushed": flushed,
        "rows": rows,
        "written": stats["written"],
        "spooled": stats["spooled"],
        "failed": stats["failed"],
    }


def _index_catchup(store: SqliteStore) -> float:
    """Seconds to bring the search index up to date after the writer's timed window.

    The writer indexes in idle moments and puts storing first while records wait, so
    most of a 50,000-record run is indexed afterwards; this is that remaining work.
    """
    started = time.perf_counter()
    while store.index_pending(5_000) > 0:
        pass
    return time.perf_counter() - started


def writer(bench: Bench) -> Outcome:
    """Rows/s the record writer sustains into SQLite, with and without enrichment."""
    n = bench.plan.writer_records
    out = Outcome("writer")
    results = {}
    for enrich in (True, False):
        records = make_records(n)
        label = "enriched" if enrich else "plain"
        with tempfile.TemporaryDirectory(dir=bench.workdir) as folder:
            results[label] = _write_records(records, Path(folder), enrich)
        del records
    rich, plain = results["enriched"], results["plain"]
    out.add(
        "rows/s with enrichment",
        gateway=num(rich["rows_per_s"]),
        target=f"≥ {num(WRITER_MIN_ROWS_PER_S)}",
        met=rich["rows_per_s"] >= WRITER_MIN_ROWS_PER_S,
    )
    out.add(
        "rows/s with enrichment, counting the search index catch-up",
        gateway=num(rich["rows_per_s_indexed"]),
    )
    out.add("rows/s without enrichment", gateway=num(plain["rows_per_s"]))
    for label, result in results.items():
        out.add(
            f"rows stored ({label}) / spooled",
            gateway=f"{num(result['rows'])} / {num(result['spooled'])}",
            target=f"{num(n)} / 0",
            met=result["rows"] == n and result["spooled"] == 0 and result["flushed"],
        )
    out.notes.append(
        f"{num(n)} records with ~1 KB JSON bodies submitted in-process (no faster than the "
        f"queue of {num(QUEUE_SIZE)} drains), timed until flush() returned; batch size 500. "
        f"The search index catch-up after it took {rich['index_catchup_s']:.2f} s (enriched run)"
    )
    out.raw = results
    return out


@contextmanager
def _scratch_database() -> Iterator[str]:
    name = f"sg_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield name
    finally:
        with admin.cursor() as cur:
            drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
            cur.execute(sql.SQL(drop).format(sql.Identifier(name)))
        admin.close()


def _query(db: str, statement: str) -> tuple[Any, ...] | None:
    try:
        with psycopg2.connect(dbname=db, connect_timeout=5, **PG) as conn, conn.cursor() as cur:
            cur.execute(statement)
            return tuple(cur.fetchone())
    except psycopg2.Error:
        return None  # the table is not there yet


_COUNT_NAMES = ("rows", "distinct_ids", "tagged", "distinct_tags")
_COUNTS = """
SELECT count(*), count(DISTINCT id), count(request_headers->>'x-bench-seq'),
       count(DISTINCT request_headers->>'x-bench-seq')
FROM requests
"""


def _peak(samples: list[Sample]) -> int:
    return max((s.worker_kib for s in samples), default=0)


def pgdown(bench: Bench) -> Outcome:
    """Steady load while PostgreSQL is unreachable: no record lost or doubled, memory bounded."""
    plan = bench.plan
    out = Outcome("pgdown")
    timeline: dict[str, float] = {}
    with _scratch_database() as db, TcpForwarder(PG_HOST, PG_PORT) as forwarder:
        env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{forwarder.port}/{db}"}
        with bench.gateway("pgdown", env, warm=False) as gw:  # every row is from the load
            if not _wait(lambda: _query(db, "SELECT count(*) FROM requests") is not None, 30, 0.2):
                raise RuntimeError("the gateway never created its tables in PostgreSQL")
            spool = gw.spool
            seconds = plan.pg_up_s + plan.pg_down_s + plan.pg_tail_s
            with (
                MemorySampler(gw.pid, probe=lambda: dir_size(spool)) as sampler,
                concurrent.futures.ThreadPoolExecutor(1) as pool,
            ):
                load = pool.submit(
                    run_pyload,
                    bench.procs,
                    gw.url + CHAT_PATH,
                    PG_CONNECTIONS,
                    seconds,
                    int(seconds * 30_000),
                    bench.load_cpus,
                    tag=True,
                )
                timeline["start"] = time.monotonic()
                time.sleep(plan.pg_up_s)
                forwarder.down()
                timeline["down"] = time.monotonic()
                time.sleep(plan.pg_down_s)
                forwarder.up()
                timeline["up"] = time.monotonic()
                result = load.result(timeout=seconds + 90)
                timeline["load_end"] = time.monotonic()
                caught_up = _wait(
                    lambda: (_query(db, _COUNTS) or (0,))[0] >= result.requests,
                    plan.pg_catchup_s,
                    0.5,
                )
                timeline["caught_up"] = time.monotonic()
                after = sampler.take()
            status = requests.get(f"{gw.url}/status", timeout=5).json()
        counts = _query(db, _COUNTS) or (0, 0, 0, 0)
    rows, distinct_ids, tagged, distinct_tags = counts
    mid = (timeline["down"] + timeline["up"]) / 2
    before = sampler.between(timeline["start"], timeline["down"])
    early = sampler.between(timeline["down"], mid)
    late = sampler.between(mid, timeline["up"])
    recovery = sampler.between(timeline["up"], timeline["caught_up"])
    before_kib = before[-1].worker_kib if before else 0
    outage_kib = max(_peak(early), _peak(late))
    late_growth = kib_to_mb(_peak(late) - _peak(early))
    bounded = (
        kib_to_mb(outage_kib - before_kib) <= OUTAGE_MAX_GROWTH_MB
        and late_growth <= OUTAGE_MAX_LATE_GROWTH_MB
    )
    spool_peak = max(s.extra for s in sampler.samples)
    catchup = timeline["caught_up"] - timeline["up"]
    detail = result.detail
    out.add(
        "requests sent / answered / failed",
        gateway=f"{num(detail['sent'])} / {num(result.requests)} / {num(detail['failed'])}",
    )
    out.add(
        "rows in PostgreSQL (tagged)",
        gateway=f"{num(rows)} ({num(tagged)})",
        target="= answered, none lost",
        met=caught_up and rows == result.requests and distinct_tags == result.requests,
    )
    out.add(
        "duplicates: rows minus distinct ids / tags",
        gateway=f"{rows - distinct_ids} / {tagged - distinct_tags}",
        target="0 / 0",
        met=rows == distinct_ids and tagged == distinct_tags,
    )
    out.add(
        "worker RSS before / outage peak / after",
        gateway=f"{mb(before_kib)} / {mb(outage_kib)} / {mb(after.worker_kib)}",
        diff=f"{kib_to_mb(outage_kib - before_kib):+.1f} MB",
        target=f"bounded (≤ +{OUTAGE_MAX_GROWTH_MB:.0f} MB, flat in 2nd half)",
        met=bounded,
    )
    out.add("worker RSS peak during catch-up", gateway=mb(_peak(recovery)))
    out.add("spool on disk at peak", gateway=f"{spool_peak / 1e6:,.1f} MB")
    out.add(
        "catch-up after PostgreSQL returned",
        gateway=f"{catchup:.1f} s" + ("" if caught_up else " (gave up)"),
    )
    out.notes.append(
        f"{PG_CONNECTIONS} connections of non-streaming chat (Python generator, every request "
        f"tagged x-bench-seq) for {plan.pg_up_s:g} s up, {plan.pg_down_s:g} s down, "
        f"{plan.pg_tail_s:g} s up; then rows polled up to {plan.pg_catchup_s:g} s. 'Flat in "
        f"2nd half': outage peak of the 2nd half ≤ 1st half + {OUTAGE_MAX_LATE_GROWTH_MB:g} MB "
        f"(measured {late_growth:+.1f} MB)"
    )
    totals = status.get("records", {}).get("totals")
    if totals:
        out.notes.append(f"gateway record counters at the end: {totals}")
    out.raw = {
        "load": result.as_dict(),
        "counts": dict(zip(_COUNT_NAMES, counts, strict=True)),
        "caught_up": caught_up,
        "timeline": {k: v - timeline["start"] for k, v in timeline.items()},
        "rss_kib": {"before": before_kib, "outage_peak": outage_kib, "after": after.worker_kib},
        "spool_peak_bytes": spool_peak,
        "forwarder": {"accepted": forwarder.accepted, "refused": forwarder.refused},
        "status_records": status.get("records"),
    }
    return out
