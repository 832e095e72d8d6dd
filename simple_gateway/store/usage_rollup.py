"""SQLite's usage rollup: the rows a batch added to `requests`, added to `usage_rollup`.

The rollup (migration 0005) holds, per UTC minute, provider and model, sums the usage page
reads instead of scanning records. SQLite used to keep it with a row trigger, one upsert per
inserted record; since migration 0006 the store runs one grouped upsert per batch, inside the
batch's transaction, over the rows whose rowid is above the highest one before the batch. Rows
an insert skipped (`ON CONFLICT (id) DO NOTHING`, a replayed record) got no rowid, so they are
not counted twice, as with the trigger. Retention still subtracts with the delete trigger.
"""

from __future__ import annotations

import sqlite3

# Duration bands d00..d14 (ms); the same edges as the columns of usage_rollup.
_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000)


def _band(index: int) -> str:
    low = _EDGES[index - 1] if index > 0 else None
    high = _EDGES[index] if index < len(_EDGES) else None
    tests = [
        *([f"duration_ms >= {low}"] if low is not None else []),
        *([f"duration_ms < {high}"] if high is not None else []),
    ]
    return f"sum(CASE WHEN {' AND '.join(tests)} THEN 1 ELSE 0 END)"


_BANDS = [f"d{i:02d}" for i in range(len(_EDGES) + 1)]
_SUMS = ["requests", "errors", "input_tokens", "output_tokens", "cost_usd", "unpriced"]
_SUMS += ["duration_ms_sum", *_BANDS]

ADD_ROWS_SQL = f"""
INSERT INTO usage_rollup (minute, provider, model, {", ".join(_SUMS)})
SELECT
    substr(started_at, 1, 16), provider, coalesce(model, ''),
    count(*),
    sum(CASE WHEN outcome <> 'completed' OR status >= 400 THEN 1 ELSE 0 END),
    sum(coalesce(input_tokens, 0)),
    sum(coalesce(output_tokens, 0)),
    sum(coalesce(cost_usd, 0)),
    sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END),
    sum(coalesce(duration_ms, 0)),
    {", ".join(_band(i) for i in range(len(_BANDS)))}
FROM requests
WHERE rowid > ?
GROUP BY 1, 2, 3
ON CONFLICT (minute, provider, model) DO UPDATE SET
    {", ".join(f"{c} = usage_rollup.{c} + excluded.{c}" for c in _SUMS)}
"""


def highest_rowid(conn: sqlite3.Connection) -> int:
    """The highest rowid of `requests` (0 when empty): read it before inserting a batch."""
    return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0])


def add_rows_after(conn: sqlite3.Connection, rowid: int) -> None:
    """Add the requests rows above `rowid` (those the batch just inserted) to the rollup.

    Call it in the batch's transaction: SQLite numbers new rows above the highest rowid, so
    the rows above the one read before the inserts are exactly the batch's.
    """
    conn.execute(ADD_ROWS_SQL, (rowid,))
