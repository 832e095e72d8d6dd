"""The journal: finished exchanges on disk until the writer has stored or spooled them.

A record waits in the writer's queue for up to WRITER_FLUSH_INTERVAL before its batch is
written; a worker killed in that window (SIGKILL, the OOM killer, a crash) would lose it.
So each finished record is also appended to a journal file of the worker's own, and
forgotten once the writer has settled it (stored, spooled, or given up on and logged).
The next worker to start replays what a dead worker's journal still holds; inserts are
idempotent on `id`, so a record replayed although it was stored costs nothing.

design: each worker copies length-prefixed pickles of its records into
``journal-<pid>-<ms>.bin`` under the spool folder, a file mapped into memory (see
`_Segment`), and holds an exclusive ``flock`` on every journal file it owns for as long as
it lives, so a file nobody holds a lock on belongs to a dead worker. A segment is cleared
when all its records are settled (deleted, when it is not the current one), and a new one
starts when it is full (8 MiB).

Durability: what a worker put in its journal survives the worker's death, whatever kills
it (SIGKILL, the OOM killer, a crash), because the pages belong to the kernel. Nothing is
fsynced: a crash of the whole machine or a power cut can lose the records of the last
moments, as it can lose anything not yet in the database. In exchange the journal costs
no disk write at all in the usual case, where a segment is cleared before the kernel
writes it back.

Secrets: the request's secret values (its key headers and query parameters) are scrubbed
from the record's text fields and header values and from the journal's copy of the bodies,
key fields of a JSON request body are redacted in that copy (a quick look at the keys
spares most bodies the full walk), and the list of secrets is left out. Replay unpickles
nothing but plain values and the gateway's own dataclasses and enums.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import pickle
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from simple_gateway.logthrottle import ThrottledLog
from simple_gateway.records.lockfile import create_locked, lock_unheld
from simple_gateway.records.model import BodyCapture, FileRef, Outcome, Record
from simple_gateway.records.scrub import scrub_fields
from simple_gateway.redaction import SecretSet, redact_body_fields
from simple_gateway.store.base import Row

log = logging.getLogger(__name__)

_PREFIX = "journal-"
_SUFFIX = ".bin"
_SEGMENT_BYTES = 8 * 1024 * 1024
_RETRY_SECONDS = 5.0  # after the disk had no room for a segment
_FRAME = struct.Struct("<I")  # the length of the pickle that follows; 0 ends the file
_END = _FRAME.pack(0)


class _Segment:
    """One journal file this worker owns, mapped into memory, and the ids not settled yet.

    Frames are copied into the mapping, not written with a system call: a write would
    release the interpreter lock on every request, and its re-acquisition costs the request
    threads more than the rest of the journal. The pages belong to the kernel's page cache,
    so they outlive a killed process. The file is allocated in full when it is created, so
    a full disk fails the creation (and the journal waits), never a write into the mapping.
    """

    def __init__(self, path: Path, fd: int, capacity: int) -> None:
        self.path = path
        self.fd = fd
        self.map = mmap.mmap(fd, capacity)
        self.capacity = capacity
        self.size = 0
        self.pending: set[str] = set()

    def add(self, data: bytes) -> bool:
        """Append one frame; False when it does not fit. The length goes in last, so a
        process killed in the middle of a copy leaves a frame replay does not see."""
        end = self.size + _FRAME.size + len(data)
        if end + _FRAME.size > self.capacity:
            return False
        self.map[self.size + _FRAME.size : end] = data
        self.map[end : end + _FRAME.size] = _END
        _FRAME.pack_into(self.map, self.size, len(data))
        self.size = end
        return True

    def clear(self) -> None:
        _FRAME.pack_into(self.map, 0, 0)
        self.size = 0

    def remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.close()

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class Journal:
    """Append-only per-worker files of finished records; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._current: _Segment | None = None
        self._segments: list[_Segment] = []
        self._where: dict[str, _Segment] = {}
        self._errors = ThrottledLog(log)
        self._open = False
        self._retry_at = 0.0

    def open(self) -> None:
        """Start this worker's first segment; call it in the worker, after the fork."""
        with self._lock:
            if not self._open:
                self._open = True
                self.directory.mkdir(parents=True, exist_ok=True)
                self._current = self._new_segment()

    def append(self, record: Record) -> None:
        """Keep a finished record until `settled` names it; never raises."""
        try:
            data = pickle.dumps(_journal_copy(record), protocol=pickle.HIGHEST_PROTOCOL)
            with self._lock:
                segment = self._current
                if segment is None or not segment.add(data):
                    if segment is not None and not segment.pending:
                        self._segments.remove(segment)  # full of settled records only
                        segment.remove()
                    segment = self._current = self._new_segment(len(data))
                    if segment is None or not segment.add(data):
                        return
                segment.pending.add(record.id)
                self._where[record.id] = segment
        except Exception as exc:
            self._errors.error(
                type(exc).__name__, "journal: could not keep record %s: %s", record.id, exc
            )

    def settled(self, rows: Iterable[Row]) -> None:
        """The writer stored, spooled or gave up on these rows: forget their records."""
        with self._lock:
            touched = set()
            for row in rows:
                segment = self._where.pop(row.get("id"), None)  # type: ignore[arg-type]
                if segment is not None:
                    segment.pending.discard(row["id"])
                    touched.add(segment)
            for segment in touched:
                if segment.pending:
                    continue
                if segment is self._current:
                    segment.clear()
                    continue
                self._segments.remove(segment)
                try:
                    segment.remove()
                except OSError as exc:
                    self._errors.error("trim", "journal: could not trim %s: %s", segment.path, exc)

    def close(self) -> None:
        """On a clean stop, after the writer drained: remove what is settled, keep the rest."""
        with self._lock:
            for segment in self._segments:
                if segment.pending:
                    segment.close()  # its records are replayed by the next worker
                else:
                    segment.remove()
            self._segments = []
            self._current = None
            self._open = False
            self._where.clear()

    def replay(self, submit: Callable[[Record], None], flush: Callable[[], bool]) -> int:
        """Hand the records of dead workers' journals to `submit`; a file goes once `flush`
        says they are all settled. The number of records handed over."""
        replayed = 0
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            fd = lock_unheld(path)
            if fd is None:
                continue
            try:
                records = _read_records(fd, path)
                for record in records:
                    submit(record)
                if flush():
                    path.unlink(missing_ok=True)
                    replayed += len(records)
                    if records:
                        log.info("journal: replayed %d records from %s", len(records), path.name)
            except Exception:
                log.exception("journal: could not replay %s; it is kept", path)
            finally:
                os.close(fd)
        return replayed

    def _new_segment(self, frame: int = 0) -> _Segment | None:
        """A fresh segment, or None (no journal for now) when the disk cannot hold one."""
        if not self._open or time.monotonic() < self._retry_at:
            return None
        capacity = max(_SEGMENT_BYTES, 2 * (frame + 2 * _FRAME.size))
        path, fd = create_locked(self.directory, _PREFIX, _SUFFIX, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, capacity)
            segment = _Segment(path, fd, capacity)
        except OSError as exc:
            self._errors.error(
                "segment", "journal: no room for a journal file (%s); records unjournaled", exc
            )
            path.unlink(missing_ok=True)
            os.close(fd)
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            return None
        self._segments.append(segment)
        return segment


def _journal_copy(record: Record) -> dict[str, Any]:
    """The record's fields as plain values, without the secrets and with them scrubbed.

    Bodies become dicts (pickling dataclass instances costs three times as much); fields
    holding other dataclasses are pickled as they are and restored by `_RecordUnpickler`.
    """
    secrets = SecretSet(record.secrets)
    if secrets:  # the writer scrubs the same fields again; scrubbing is idempotent
        scrub_fields(record, secrets)
    state = dict(vars(record))
    del state["secrets"]
    for name in ("request_body", "response_body"):
        body = dict(vars(state[name]))
        if name == "request_body":
            body["inline"], _ = redact_body_fields(
                body["inline"], body["content_type"], body["content_encoding"]
            )
        if secrets and body["inline"]:
            body["inline"] = secrets.bytes(body["inline"])
        if body["file"] is not None:
            body["file"] = dict(vars(body["file"]))
        state[name] = body
    state["outcome"] = str(record.outcome)
    return state


def _record_from(state: dict[str, Any]) -> Record:
    for name in ("request_body", "response_body"):
        body = dict(state.get(name) or {})
        if body.get("file") is not None:
            body["file"] = FileRef(**body["file"])
        state[name] = BodyCapture(**body)
    state["outcome"] = Outcome(state.get("outcome", Outcome.COMPLETED))
    record = Record(id="", request_id="", started_at=0.0, provider="", method="", path="")
    known = set(vars(record))
    record.__dict__.update({k: v for k, v in state.items() if k in known})
    return record


class _RecordUnpickler(pickle.Unpickler):
    """Only the gateway's own dataclasses and enums: replay never runs anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("simple_gateway.") and "." not in name:
            cls = getattr(sys.modules.get(module), name, None)
            if isinstance(cls, type) and (is_dataclass(cls) or issubclass(cls, Enum)):
                return cls
        raise pickle.UnpicklingError(f"journal: {module}.{name} is not a record class")


def _read_records(fd: int, path: Path) -> list[Record]:
    with os.fdopen(os.dup(fd), "rb") as handle:
        data = handle.read()
    records = []
    offset = 0
    while offset + _FRAME.size <= len(data):
        (length,) = _FRAME.unpack_from(data, offset)
        if length == 0:
            break  # the end of what was written
        frame = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if len(frame) < length:
            log.warning("journal: %s ends with a torn record", path.name)
            break
        offset += _FRAME.size + length
        try:
            records.append(_record_from(_RecordUnpickler(io.BytesIO(frame)).load()))
        except Exception as exc:
            log.error("journal: unreadable record in %s skipped: %s", path.name, exc)
    return records


class JournaledSink:
    """What the forwarder submits records to: the journal first, then the writer."""

    def __init__(self, journal: Journal, writer: Any) -> None:
        self.journal = journal
        self.writer = writer

    def submit(self, record: Record) -> None:
        self.journal.append(record)
        self.writer.submit(record)
