"""The Store protocol: where records end up, and the errors a writer must tell apart.

A writer needs to know one thing about a failure: is the database unavailable
(keep the batch, spool it, try again later) or did it refuse this data (repair or
isolate the row, never lose the rest of the batch)? Stores translate their
driver's exceptions into these two classes:

    StoreError
    ├── StoreUnavailable   down, locked, disk full, read-only, schema not migrated yet
    └── RowRejected        encoding, NUL bytes, size, constraint, a value the driver cannot bind

When a driver error fits neither clearly, stores choose StoreUnavailable: a batch
kept for later can still be written once the cause is fixed, a batch taken apart
row by row and dropped cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Protocol

Row = dict[str, Any]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written now (down, locked, disk full)."""


class RowRejected(StoreError):
    """The database refused the data itself (encoding, size, constraint)."""


class Store(Protocol):
    """A database that keeps records. Owned by one thread at a time."""

    dialect: str

    def migrate(self) -> list[str]:
        """Apply pending migrations (safe when several processes start at once); names applied."""
        ...

    def write_batch(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        """Insert rows in one transaction; a row whose id is already stored is skipped.

        `files` also carries the rows of other tables that belong to the records (attempts,
        guardrail runs), each naming its table in `_table` (see `tables_of`).
        """
        ...

    def index_pending(self, limit: int) -> int:
        """Bring the search index up to date by at most `limit` rows; the rows still pending.

        Stores whose database keeps its search index itself answer 0 at once.
        """
        ...

    def purge_before(self, cutoff_iso: str) -> list[str]:
        """Delete requests started before the cutoff and their files rows; file paths removed."""
        ...

    def purge_keep_newest(self, max_rows: int) -> list[str]:
        """Keep only the newest `max_rows` requests (and their files rows); file paths removed."""
        ...

    def count(self) -> int:
        """Number of rows in `requests`."""
        ...

    def close(self) -> None: ...


def purge_guardrail_runs_sql(doomed: str) -> str:
    """A DELETE of the guardrail runs of doomed requests (run it before deleting them)."""
    return f"DELETE FROM guardrail_runs WHERE record_id IN (SELECT id FROM requests WHERE {doomed})"


def purge_attempts_sql(doomed: str) -> str:
    """A DELETE of the upstream attempts of doomed requests (run it before deleting them)."""
    return f"DELETE FROM attempts WHERE record_id IN (SELECT id FROM requests WHERE {doomed})"


def group_by_columns(rows: Sequence[Row]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Rows grouped by their set of columns, in first-seen order, so each group is one INSERT.

    Column names are checked to be plain lower-case identifiers: they are put into SQL
    text, so anything else is a programming error (ValueError), never data to quote.
    """
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for columns in groups:
        for name in columns:
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"not a column name: {name!r}")
    return list(groups.items())


RELATED_TABLES = frozenset({"files", "attempts", "guardrail_runs"})


def tables_of(requests: Sequence[Row], files: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """A batch as (table, rows) pairs: requests first, then files, then other related tables.

    A related row names its table in `_table` (files rows need not); the key is not a column.
    """
    tables: dict[str, list[Row]] = {"requests": list(requests), "files": []}
    for row in files:
        table = row.get("_table", "files")
        if table not in RELATED_TABLES:
            raise ValueError(f"not a table records write: {table!r}")
        tables.setdefault(table, []).append(
            {k: v for k, v in row.items() if k != "_table"} if "_table" in row else row
        )
    return [(table, rows) for table, rows in tables.items() if rows]


def row_values(columns: tuple[str, ...], rows: Sequence[Row]) -> Iterator[tuple[Any, ...]]:
    """Each row's values in `columns` order, for positional parameters.

    Binding by position is much cheaper than by name for ~40 columns: SQLite looks each
    name up in a list and the driver builds a name string per value and row.
    """
    if len(columns) == 1:
        return ((row[columns[0]],) for row in rows)
    return map(itemgetter(*columns), rows)


def utc_iso(value: str) -> str:
    """An ISO-8601 instant in the exact form the records use (UTC, milliseconds, `+00:00`).

    Rows carry timestamps such as `2026-11-23T14:51:00.123+00:00`; a cutoff in the same
    form compares correctly as text. A value without an offset is taken as UTC.
    """
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def purge_files_sql(doomed: str, created_before: str | None) -> str:
    """A DELETE of the files rows of doomed requests, returning their paths; for both dialects.

    `doomed` is a condition on a requests row, in the dialect's parameter style. A files
    row belongs to a doomed exchange when a doomed row names it as its request or response
    file, or when its record_id is a doomed row's id. With `created_before`, files rows
    created before that instant go as well. Run it before deleting the requests rows
    themselves, in the same transaction.
    """
    older = f"created_at < {created_before} OR " if created_before else ""
    return f"""
        DELETE FROM files
        WHERE {older}
            id IN (SELECT request_file_id FROM requests WHERE {doomed})
            OR id IN (SELECT response_file_id FROM requests WHERE {doomed})
            OR record_id IN (SELECT id FROM requests WHERE {doomed})
        RETURNING path
    """
