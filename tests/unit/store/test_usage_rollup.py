"""SQLite's per-batch usage rollup adds up exactly as the per-row trigger of 0005 did."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.records.model import Outcome
from simple_gateway.store import usage_rollup
from simple_gateway.store.sqlite import SqliteStore
from tests.unit.store import make_row, sqlite_store_before_0006

# One duration in each band of usage_rollup (d00..d14), edges included, and none at all.
DURATIONS = (0.004, 0.01, 0.03, 0.05, 0.2, 0.25, 0.7, 1.0, 3, 5, 12, 25, 70, 100, 260, None)


def _rows(first: int) -> list[dict[str, Any]]:
    rows = []
    for i, seconds in enumerate(DURATIONS):
        n = first + i * 20  # three minutes of records
        changes: dict[str, Any] = {
            "ended_at": None if seconds is None else 1_795_000_000.0 + n + seconds
        }
        if i % 4 == 1:
            changes.update(status=502, outcome=Outcome.UPSTREAM_ERROR, input_tokens=None)
        if i % 5 == 2:
            changes.update(model=None, cost_usd=None, cost_status="unpriced")
        if i % 3 == 0:
            changes.update(provider="anthropic", output_tokens=None)
        rows.append(make_row(n, **changes))
    return rows


def _trigger_store(tmp_path: Path) -> SqliteStore:
    """A store whose schema stops at migration 0005: the rollup kept by a row trigger."""
    store = sqlite_store_before_0006(tmp_path, "trigger.db")
    store.migrate()
    return store


def _rollup(store: SqliteStore) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(
            "SELECT * FROM usage_rollup ORDER BY minute, provider, model"
        ).fetchall()
    finally:
        conn.close()


def _same(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a[:3] == b[:3]
        assert a[3:] == pytest.approx(b[3:], rel=1e-12)  # float sums, added in another order


def test_batches_replays_and_retention_give_the_rollup_the_trigger_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_trigger = _trigger_store(tmp_path)

    def as_before_0006(step: Callable[[SqliteStore], object]) -> None:
        """The step on the trigger's database, as the store wrote before 0006: no batch sums."""
        with monkeypatch.context() as patch:
            patch.setattr(usage_rollup, "add_rows_after", lambda conn, rowid: None)
            step(by_trigger)

    by_batch = SqliteStore(str(tmp_path / "batch.db"))
    by_batch.migrate()
    try:
        first, second = _rows(0), _rows(1)
        steps = [
            lambda s: s.write_batch(first, []),
            lambda s: s.write_batch(first[3:9] + second, []),  # a replay: six rows again
            lambda s: s.write_batch([], []),
            lambda s: s.write_batch(second[:2], []),  # nothing new at all
        ]
        for step in steps:
            as_before_0006(step)
            step(by_batch)
            _same(_rollup(by_batch), _rollup(by_trigger))
        totals = _rollup(by_batch)
        assert sum(r[3] for r in totals) == 2 * len(DURATIONS)  # requests, duplicates skipped
        assert [sum(r[c] for r in totals) for c in range(10, 25)] == [2] * 15  # each band

        for purge in (lambda s: s.purge_keep_newest(9), lambda s: s.purge_before("2030-01-01")):
            as_before_0006(purge)
            purge(by_batch)
            _same(_rollup(by_batch), _rollup(by_trigger))
    finally:
        by_trigger.close()
        by_batch.close()


def test_the_rollup_is_written_with_its_batch_or_not_at_all(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "g.db"))
    store.migrate()
    try:
        rows = _rows(0)
        rows[-1] = {**rows[-1], "outcome": None}  # NOT NULL: the batch is refused
        with pytest.raises(Exception, match="NOT NULL"):
            store.write_batch(rows, [])
        assert _rollup(store) == []
        store.write_batch(rows[:-1], [])
        assert sum(r[3] for r in _rollup(store)) == len(rows) - 1
    finally:
        store.close()
