"""SQLite's search index catch-up: rows stored since the index last ran go into requests_fts.

design: since migration 0006 no insert trigger feeds the FTS5 index (tokenising inside the
record writer's insert statement cost more than the insert). `requests_fts_progress` holds the
highest requests rowid indexed so far; `index_pending` indexes the next rows above it, in rowid
order, and moves the mark, in one `BEGIN IMMEDIATE` transaction: several processes sharing the
file take turns and never index a row twice. The record writer calls it when it has nothing
else to do (and under load once the lag grows); the dashboard's search calls it first, so a
search sees every stored record. Deletes and updates of rows not yet indexed leave the index
alone (see the triggers of migration 0006).
"""

from __future__ import annotations

import sqlite3

_PENDING_SQL = (
    "SELECT coalesce((SELECT max(rowid) FROM requests), 0) - indexed_rowid "
    "FROM requests_fts_progress"
)
_NEXT_MARK_SQL = (
    "SELECT max(rowid) FROM (SELECT rowid FROM requests WHERE rowid > ? ORDER BY rowid LIMIT ?)"
)
# The values the insert trigger of migration 0005 gave the index; its delete trigger hands back
# the same ones.
_INDEX_SQL = (
    "INSERT INTO requests_fts (rowid, prompt, reply) "
    "SELECT rowid, request_body, coalesce(response_text, response_body) "
    "FROM requests WHERE rowid > ? AND rowid <= ?"
)


def pending(conn: sqlite3.Connection) -> int:
    """How many rowids above the mark: the rows not indexed yet (deleted ones aside)."""
    return max(0, int(conn.execute(_PENDING_SQL).fetchone()[0]))


def index_next(conn: sqlite3.Connection, limit: int) -> int:
    """Index up to `limit` rows above the mark and move it; run it in a write transaction.

    Returns the number of rows indexed.
    """
    (mark,) = conn.execute("SELECT indexed_rowid FROM requests_fts_progress").fetchone()
    (last,) = conn.execute(_NEXT_MARK_SQL, (mark, limit)).fetchone()
    if last is None:
        return 0
    indexed = conn.execute(_INDEX_SQL, (mark, last)).rowcount
    conn.execute("UPDATE requests_fts_progress SET indexed_rowid = ?", (last,))
    return int(indexed)
