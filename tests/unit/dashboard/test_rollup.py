"""The usage rollup (migration 0005) follows every insert and retention delete, on both stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.dashboard.db import Database, open_database
from simple_gateway.dashboard.queries.usage import BANDS, band_percentile
from simple_gateway.records.model import Outcome
from simple_gateway.store.postgres import PostgresStore
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import fresh_postgres_database, make_record

TOTALS = "SELECT sum(requests) AS requests, sum(errors) AS errors, sum(input_tokens) AS tokens"


def _records() -> list[dict[str, Any]]:
    rows = []
    for n in range(6):
        record = make_record(n * 30)  # several records per minute
        if n == 5:
            record.outcome = Outcome.UPSTREAM_ERROR
            record.status = 500
        rows.append(record.to_row())
    return rows


def _check(store: Any, db: Database) -> None:
    rows = _records()
    store.write_batch(rows, [])
    store.write_batch(rows[:2], [])  # a replayed batch is skipped, and so not counted twice
    totals = db.one(f"{TOTALS} FROM usage_rollup")
    raw = db.one(
        "SELECT count(*) AS requests, sum(CASE WHEN outcome <> 'completed' OR status >= 400 "
        "THEN 1 ELSE 0 END) AS errors, sum(input_tokens) AS tokens FROM requests"
    )
    assert totals is not None and raw is not None
    assert {k: int(v) for k, v in totals.items()} == {k: int(v) for k, v in raw.items()}
    assert int(totals["requests"]) == 6 and int(totals["errors"]) == 1
    minutes = {row["started_at"][:16] for row in rows}
    assert {r["minute"] for r in db.query("SELECT minute FROM usage_rollup")} == minutes
    store.purge_keep_newest(2)
    after = db.one(f"{TOTALS} FROM usage_rollup")
    assert after is not None and int(after["requests"]) == 2


def test_sqlite_rollup_counts_inserts_once_and_subtracts_deletes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "g.db"))
    store.migrate()
    db = open_database(None, str(tmp_path / "g.db"))
    try:
        _check(store, db)
    finally:
        store.close()
        db.close()


def test_postgres_rollup_counts_inserts_once_and_subtracts_deletes() -> None:
    with fresh_postgres_database() as url:
        store = PostgresStore(url)
        store.migrate()
        db = open_database(url, "")
        try:
            _check(store, db)
        finally:
            store.close()
            db.close()


@pytest.mark.parametrize(
    ("bands", "q", "check"),
    [
        ([0] * len(BANDS), 0.5, lambda v: v is None),
        ([0, 0, 0, 0, 0, 0, 10] + [0] * 8, 0.5, lambda v: 500 <= v <= 1000),
        ([0, 0, 0, 0, 0, 0, 90, 10] + [0] * 7, 0.95, lambda v: 1000 <= v <= 2500),
        ([0] * 14 + [3], 0.5, lambda v: v == 250000),
    ],
)
def test_percentiles_from_duration_bands(
    bands: list[int], q: float, check: Callable[[float | None], bool]
) -> None:
    assert check(band_percentile(bands, q))


def test_postgres_writers_racing_on_one_minute_neither_deadlock_nor_lose_counts() -> None:
    """Two writers' batches touch the same rollup rows in opposite orders, at once."""
    import threading

    with fresh_postgres_database() as url:
        setup = PostgresStore(url)
        setup.migrate()
        setup.close()
        models = [f"model-{i}" for i in range(8)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def write(worker: int) -> None:
            store = PostgresStore(url)
            try:
                barrier.wait()
                for batch in range(15):
                    order = models if worker == 0 else models[::-1]
                    rows = []
                    for index, model in enumerate(order * 40):
                        record = make_record(1, id=f"01KW{worker}{batch:03d}{index:019d}")
                        record.model = model
                        rows.append(record.to_row())
                    store.write_batch(rows, [])
            except BaseException as exc:
                errors.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        db = open_database(url, "")
        try:
            total = db.one("SELECT sum(requests) AS n FROM usage_rollup")
            assert total is not None and int(total["n"]) == 2 * 15 * 40 * len(models)
        finally:
            db.close()
