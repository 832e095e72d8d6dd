"""The record of one exchange: what the forwarder saw, and what enrichment adds.

The forwarder fills the transport facts (times, status, headers, captured bodies)
on the request path; the writer thread fills the derived ones (model, usage, cost,
assembled text) off it. A record becomes a flat row of columns for the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any


class Outcome(StrEnum):
    """How an exchange ended, from the gateway's point of view."""

    COMPLETED = "completed"
    UPSTREAM_ERROR = "upstream_error"  # the provider answered 4xx/5xx
    GATEWAY_ERROR = "gateway_error"  # the gateway refused or could not forward (413, 502, 504, ...)
    CLIENT_DISCONNECTED = "client_disconnected"
    UPSTREAM_INTERRUPTED = "upstream_interrupted"  # the provider cut the body short
    INTERRUPTED = "interrupted"  # still running when the worker had to stop
    BLOCKED = "blocked"


@dataclass
class FileRef:
    """A body (or part of one) kept as a file under FILE_STORAGE_PATH."""

    id: str
    record_id: str  # requests.id of the exchange (not its x-request-id)
    direction: str  # "request" | "response"
    kind: str  # "body" | "image"
    path: str  # relative to FILE_STORAGE_PATH
    content_type: str | None
    size: int
    sha256: str
    created_at: str


@dataclass
class AttemptRow:
    """One upstream attempt of a routed exchange: a row of the `attempts` table."""

    id: str
    attempt: int
    deployment: str
    provider: str
    model: str
    started_at: str
    duration_ms: float | None
    status: int | None
    outcome: str  # 'answered' | 'retried' | 'failed_over' | 'failed'
    error_kind: str | None = None
    error_message: str | None = None


@dataclass
class BodyCapture:
    """A body as recorded: an inline copy (possibly a preview) and/or a file."""

    inline: bytes = b""
    truncated: bool = False  # the inline copy is shorter than the body
    size: int = 0  # bytes that crossed the gateway
    content_type: str | None = None
    content_encoding: str | None = None
    file: FileRef | None = None
    missing: str | None = None  # why the body is not kept in full (disk error, refused body)


@dataclass
class GuardrailRun:
    """One execution of one guardrail on one exchange (a row of `guardrail_runs`)."""

    started_at: float
    guardrail: str
    type: str
    stage: str  # "input" | "output"
    priority: int
    verdict: str  # pass, block, redact, replace, error, timeout, cancelled
    enforced: bool
    duration_ms: float
    reason: str | None = None
    score: float | None = None
    error: str | None = None
    original_text: str | None = None
    override_text: str | None = None
    id: str = ""  # made from the record's id when written (see `child_id`) unless set

    def to_row(self, record_id: str, index: int = 0) -> dict[str, Any]:
        return {
            "id": self.id or child_id(record_id, index),
            "record_id": record_id,
            "started_at": iso(self.started_at),
            "guardrail": self.guardrail,
            "type": self.type,
            "stage": self.stage,
            "priority": self.priority,
            "verdict": self.verdict,
            "enforced": self.enforced,
            "reason": self.reason,
            "score": self.score,
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
            "original_text": _clean(self.original_text),
            "override_text": _clean(self.override_text),
        }


@dataclass
class Record:
    """One exchange through the gateway."""

    id: str
    request_id: str
    started_at: float
    provider: str
    method: str
    path: str
    query: str = ""
    first_byte_at: float | None = None
    ended_at: float | None = None
    upstream_url: str = ""
    status: int | None = None
    stream: bool = False
    client_addr: str | None = None
    user_agent: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    request_body: BodyCapture = field(default_factory=BodyCapture)
    response_body: BodyCapture = field(default_factory=BodyCapture)
    error_kind: str | None = None
    error_message: str | None = None
    outcome: Outcome = Outcome.COMPLETED
    bytes_in: int = 0
    bytes_out: int = 0
    response_sha256: str | None = None
    # Filled by enrichment in the writer thread.
    model: str | None = None
    response_text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_source: str | None = None
    cost_usd: float | None = None
    cost_status: str | None = None
    files: list[FileRef] = field(default_factory=list)
    blocked_by: str | None = None  # the guardrail that refused the exchange
    guardrail_runs: list[GuardrailRun] = field(default_factory=list)
    # Why parts of the record are missing (an image not saved); added to error_message.
    notes: list[str] = field(default_factory=list)
    # Filled by model routing (provider/model names and aliases); None for a pass-through.
    alias: str | None = None
    deployment: str | None = None
    upstream_request_body: str | None = None
    gateway_key: str | None = None
    attempts: list[AttemptRow] = field(default_factory=list)
    # Secret values the request carried, to scrub from stored bodies; never stored.
    secrets: list[str] = field(default_factory=list, repr=False)

    def to_row(self) -> dict[str, Any]:
        """The record as the columns of the `requests` table.

        One dict literal, written out column by column: the writer thread turns thousands
        of records a second into rows, and merging partial dicts cost a third of this.
        """
        request, response = self.request_body, self.response_body
        started, first_byte, ended = self.started_at, self.first_byte_at, self.ended_at
        return {
            "id": self.id,
            "request_id": self.request_id,
            "started_at": iso(started),
            "first_byte_at": iso(first_byte),
            "ended_at": iso(ended),
            "provider": self.provider,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "upstream_url": self.upstream_url,
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "duration_ms": None if ended is None else round((ended - started) * 1000, 3),
            "ttfb_ms": None if first_byte is None else round((first_byte - started) * 1000, 3),
            "client_addr": self.client_addr,
            "user_agent": self.user_agent,
            "request_headers": headers_json(self.request_headers),
            "response_headers": headers_json(self.response_headers),
            "request_body": decode_text(request.inline) if request.inline else None,
            "request_body_truncated": request.truncated,
            "request_body_size": request.size,
            "request_content_type": request.content_type,
            "request_file_id": request.file.id if request.file else None,
            "response_body": decode_text(response.inline) if response.inline else None,
            "response_body_truncated": response.truncated,
            "response_body_size": response.size,
            "response_content_type": response.content_type,
            "response_file_id": response.file.id if response.file else None,
            "response_text": self.response_text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "usage_source": self.usage_source,
            "cost_usd": self.cost_usd,
            "cost_status": self.cost_status,
            "error_kind": self.error_kind,
            "error_message": self._error_message(),
            "outcome": str(self.outcome),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "response_sha256": self.response_sha256,
            "blocked_by": self.blocked_by,
            "alias": self.alias,
            "deployment": self.deployment,
            "attempts": len(self.attempts) or None,
            "upstream_request_body": self.upstream_request_body,
            "gateway_key": self.gateway_key,
        }

    def _error_message(self) -> str | None:
        """The error, then why any body or file the record should hold is missing."""
        if not (self.request_body.missing or self.response_body.missing or self.notes):
            return self.error_message or None
        notes = [c.missing for c in (self.request_body, self.response_body) if c.missing]
        parts = [p for p in (self.error_message, *notes, *self.notes) if p]
        return "; ".join(parts) if parts else None

    def file_rows(self) -> list[dict[str, Any]]:
        """Rows of the `files` table for this record: its body files, then extracted ones."""
        if not (self.files or self.request_body.file or self.response_body.file):
            return []  # most records: asked for every one, so answered without building lists
        bodies = [c.file for c in (self.request_body, self.response_body) if c.file is not None]
        return [_fields_of(f) for f in [*bodies, *self.files]]

    def related_rows(self) -> list[dict[str, Any]]:
        """Rows of other tables that belong to this record, each naming its table in `_table`.

        They travel with the files rows through the writer and the spool, so a record and
        everything that belongs to it are written in one batch.
        """
        if not (self.attempts or self.guardrail_runs):
            return []
        attempts = [
            {"_table": "attempts", "record_id": self.id, **_fields_of(a)} for a in self.attempts
        ]
        runs = [
            {"_table": "guardrail_runs", **run.to_row(self.id, index)}
            for index, run in enumerate(self.guardrail_runs)
        ]
        return attempts + runs


def _fields_of(row: FileRef | AttemptRow) -> dict[str, Any]:
    """A flat dataclass's fields by name, in order: `asdict` without its deep copy of each."""
    return dict(vars(row))


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def child_id(parent: str, index: int) -> str:
    """A ULID-shaped id for a record's `index`-th row of a related table.

    The record's id with its last three digits replaced by the index: unique per record
    (65 of its random bits are kept), and the same every time the record is turned into
    rows, so a record replayed from the journal cannot store its rows twice. Making it
    costs nothing on the request path.
    """
    digits = _CROCKFORD[index >> 10 & 31] + _CROCKFORD[index >> 5 & 31] + _CROCKFORD[index & 31]
    return parent[:23] + digits


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string that SQLite and PostgreSQL both read."""
    if ts is None:
        return None
    seconds, micros = divmod(round(ts * 1_000_000), 1_000_000)
    return f"{_iso_second(seconds)}.{micros // 1000:03d}+00:00"


@lru_cache(maxsize=256)
def _iso_second(seconds: int) -> str:
    """The date and time to the second; cached, as a batch shares a handful of seconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def headers_json(headers: dict[str, str]) -> str:
    """`json.dumps(headers)`, built directly when every name and value is a string.

    json.dumps sets up an encoder on every call, which costs more than encoding the
    dozen short strings of a set of headers.
    """
    try:
        pairs = [_json_string(name) + ": " + _json_string(value) for name, value in headers.items()]
    except TypeError:  # not a string: let json say how it is written, or why it cannot be
        return json.dumps(headers)
    return "{" + ", ".join(pairs) + "}"


def _clean(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "\\u0000")


def decode_text(data: bytes) -> str:
    """Bytes as text a database accepts: invalid UTF-8 replaced, NUL bytes escaped."""
    return data.decode("utf-8", errors="replace").replace("\x00", "\\u0000")
