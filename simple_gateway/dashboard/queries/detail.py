"""One exchange in full: its row, its files, its guardrail verdicts and its routing attempts.

Guardrail runs (`guardrail_runs`) and routing attempts (`attempts`) come from later
migrations; until a database has them, the detail simply has none.
"""

from __future__ import annotations

from simple_gateway.dashboard.db import Database, Row

FILE_COLUMNS = "id, direction, kind, content_type, size, sha256, created_at"


def find_request(db: Database, key: str) -> Row | None:
    """The record with this id, else the newest whose x-request-id is `key`."""
    row = db.one("SELECT * FROM requests WHERE id = ?", (key,))
    if row is None:
        row = db.one("SELECT * FROM requests WHERE request_id = ? ORDER BY id DESC LIMIT 1", (key,))
    return row


def files_of(db: Database, row: Row) -> list[Row]:
    """The files rows of a record: its body files and any extracted from its bodies."""
    owner = "record_id" if "record_id" in db.columns("files") else "request_id"
    ids = [i for i in (row.get("request_file_id"), row.get("response_file_id")) if i]
    conditions = [f"{owner} = ?"]
    params: list[object] = [row["id"]]
    if owner == "request_id":  # before 0002, files named the exchange by its x-request-id
        conditions.append("request_id = ?")
        params.append(row["request_id"])
    if ids:
        conditions.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    sql = f"SELECT {FILE_COLUMNS} FROM files WHERE {' OR '.join(conditions)} ORDER BY id"
    return db.query(sql, params)


def file_row(db: Database, file_id: str) -> Row | None:
    return db.one(f"SELECT {FILE_COLUMNS}, path FROM files WHERE id = ?", (file_id,))


def guardrail_runs_of(db: Database, record_id: str) -> list[Row]:
    if not db.has_table("guardrail_runs"):
        return []
    return db.query(
        "SELECT * FROM guardrail_runs WHERE record_id = ? ORDER BY started_at, priority, id",
        (record_id,),
    )


def attempts_of(db: Database, record_id: str) -> list[Row]:
    if not db.has_table("attempts"):
        return []
    return db.query("SELECT * FROM attempts WHERE record_id = ? ORDER BY attempt", (record_id,))
