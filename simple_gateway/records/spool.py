"""The spool: batches the database could not take yet, kept on disk until it can.

design: each process appends to its own file ``spool-<pid>-<ms>.jsonl``, one JSON line
per batch, fsynced, and holds an exclusive ``flock`` on that file for as long as it has
it open. A spool file nobody holds a lock on is finished: its owner rotated away from it
or died. Replay takes such a file by locking it and renaming it to
``<stem>.replaying-<pid>``, so two processes never replay the same file; a claim whose
replayer died lost its lock with it and is simply claimed again. Rows are written with
idempotent inserts, so a batch replayed twice after a crash costs time, never data.

Nothing here drops a line: a line that does not parse (a torn write after a crash) goes
to ``corrupt-<pid>.jsonl``, a row the database refuses even after repair goes to
``rejected-<pid>.jsonl``, both in the spool directory, for a person to look at.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from simple_gateway.records.lockfile import create_locked, lock_unheld
from simple_gateway.store.base import Row

log = logging.getLogger(__name__)

_PREFIX = "spool-"
_SUFFIX = ".jsonl"
_CLAIM = ".replaying-"
_MIN_FREE_BYTES = 1024 * 1024  # below this a spool append is about to fail

Batch = tuple[list[Row], list[Row]]


class Spool:
    """Append-only JSON Lines files of row batches, shared safely by threads and processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._file_pid = 0

    def append(self, requests: Sequence[Row], files: Sequence[Row]) -> None:
        """Add one batch durably (flushed and fsynced before returning)."""
        line = encode_batch(requests, files)
        with self._lock:
            handle = self._active()
            start = handle.tell()
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                self._abandon_active(start)
                raise

    def replay(self, write: Callable[[list[Row], list[Row]], None]) -> int:
        """Hand every spooled batch to `write`; the number of request rows it took.

        `write` must deal with rejected rows itself. If it raises (the store went away),
        the batch it was given and everything after it stay spooled, the claim is
        released and the exception propagates.
        """
        with self._replay_lock:
            self._rotate()
            replayed = 0
            for path in self._candidates():
                claim = _claim(path)
                if claim is not None:
                    replayed += self._replay_file(claim, write)
            return replayed

    def writable(self) -> bool:
        """Whether a batch could be appended now: the folder takes a file and has room."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}-{threading.get_ident()}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.close(fd)
            probe.unlink()
            space = os.statvfs(self.directory)
        except OSError:
            return False
        return space.f_bavail * space.f_frsize >= _MIN_FREE_BYTES

    def pending(self) -> int:
        """Request rows waiting in spool files (reads them all: for status pages and tests)."""
        total = 0
        for path in self._candidates():
            try:
                with open(path, "rb") as handle:
                    for line in handle:
                        batch = decode_batch(line)
                        total += len(batch[0]) if batch else 0
            except FileNotFoundError:
                continue
        return total

    def reject(self, request: Row, files: Sequence[Row], error: str) -> None:
        """Keep a row the database refused, with its files rows and the reason."""
        entry = {"error": error, "request": request, "files": list(files)}
        line = json.dumps(entry, default=str, separators=(",", ":")).encode("ascii")
        _append_line(self.directory / f"rejected-{os.getpid()}.jsonl", line)

    def close(self) -> None:
        """Release this process's spool file; it becomes replayable by anyone."""
        with self._lock:
            self._close_active()

    def _active(self) -> BinaryIO:
        if self._file is not None and self._file_pid != os.getpid():
            # Inherited across a fork: the parent's lock stays with the parent.
            self._file.close()
            self._file = None
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path, self._file = _create_locked(self.directory)
            self._file_pid = os.getpid()
        return self._file

    def _abandon_active(self, start: int) -> None:
        """After a failed append: cut the partial line if possible, then start a new file."""
        assert self._file is not None
        try:
            self._file.truncate(start)
        except OSError:
            log.warning("spool: could not cut a partial line; it will be set aside as corrupt")
        self._close_active()

    def _rotate(self) -> None:
        with self._lock:
            self._close_active()

    def _close_active(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                log.exception("spool: closing %s failed", self._path)
            self._file = None

    def _candidates(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        return [
            self.directory / name
            for name in names
            if name.startswith(_PREFIX) and (name.endswith(_SUFFIX) or _CLAIM in name)
        ]

    def _replay_file(self, claim: _Claim, write: Callable[[list[Row], list[Row]], None]) -> int:
        replayed = 0
        corrupt = self.directory / f"corrupt-{os.getpid()}.jsonl"
        with claim.handle:
            for offset, line in _lines(claim.handle):
                batch = decode_batch(line)
                if batch is None:
                    _append_line(corrupt, line)
                    log.error("spool: unreadable line in %s moved to %s", claim.path, corrupt)
                    continue
                try:
                    write(*batch)
                except BaseException:
                    self._keep_rest(claim, offset)
                    raise
                replayed += len(batch[0])
            claim.path.unlink()
        if replayed:
            log.info("spool: replayed %d rows from %s", replayed, claim.path.name)
        return replayed

    def _keep_rest(self, claim: _Claim, offset: int) -> None:
        """Move the lines not yet written to a fresh spool file and drop the claimed one."""
        try:
            path, rest = _create_locked(self.directory)
        except OSError:
            log.exception("spool: could not rewrite %s; it will be replayed in full", claim.path)
            return
        try:
            with rest:
                claim.handle.seek(offset)
                shutil.copyfileobj(claim.handle, rest)
                rest.flush()
                os.fsync(rest.fileno())
                claim.path.unlink()
        except OSError:
            # The claimed file stays whole and is claimable again once our lock is gone.
            log.exception("spool: could not rewrite %s; it will be replayed in full", claim.path)
            path.unlink(missing_ok=True)


class _Claim:
    """A spool file renamed to this process's claim name, locked through `handle`."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self.handle = handle


def _claim(path: Path) -> _Claim | None:
    """Lock and rename a spool file nobody holds; None when it is busy or already gone."""
    fd = lock_unheld(path)
    if fd is None:
        return None
    stem = path.name.split(".", 1)[0]
    claimed = path.with_name(f"{stem}{_CLAIM}{os.getpid()}")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return _Claim(claimed, os.fdopen(fd, "rb"))


def _create_locked(directory: Path) -> tuple[Path, BinaryIO]:
    """A new, uniquely named spool file, exclusively locked before anyone can claim it."""
    path, fd = create_locked(directory, _PREFIX, _SUFFIX, os.O_WRONLY | os.O_APPEND)
    return path, os.fdopen(fd, "ab")


def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    while True:
        offset = handle.tell()
        line = handle.readline()
        if not line:
            return
        yield offset, line


def _append_line(path: Path, line: bytes) -> None:
    data = line if line.endswith(b"\n") else line + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_batch(requests: Sequence[Row], files: Sequence[Row]) -> bytes:
    """One spool line; ASCII-only JSON, so NULs and lone surrogates survive the round trip."""
    batch: dict[str, Any] = {"requests": list(requests), "files": list(files)}
    return json.dumps(batch, default=str, separators=(",", ":")).encode("ascii") + b"\n"


def decode_batch(line: bytes) -> Batch | None:
    """The rows of one spool line, or None when the line is not a whole batch."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    requests, files = data.get("requests"), data.get("files", [])
    if not isinstance(requests, list) or not isinstance(files, list):
        return None
    if not all(isinstance(row, dict) for row in [*requests, *files]):
        return None
    return requests, [_current_file_row(row) for row in files]


def _current_file_row(row: Row) -> Row:
    """A files row in today's columns: lines spooled before migration 0002 name `request_id`."""
    if "request_id" in row and "record_id" not in row:
        row = dict(row)
        row["record_id"] = row.pop("request_id")
    return row
