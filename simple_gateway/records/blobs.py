"""Bodies kept as files under FILE_STORAGE_PATH, written while they stream.

Files are named for a person looking for them: ``<provider>/<YYYY-MM-DD>/<record
id>-<direction>[-<n>].<ext>``. Names are built only from values the gateway made
(its request id, a registered provider name, a fixed extension table), never from
anything in the request, so no request can choose where a file lands.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from simple_gateway.ids import new_id
from simple_gateway.logthrottle import ThrottledLog
from simple_gateway.records.model import FileRef, iso

log = logging.getLogger(__name__)

_EXTENSIONS = {
    "application/json": ".json",
    "text/event-stream": ".sse",
    "text/plain": ".txt",
    "application/octet-stream": ".bin",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/webm": ".webm",
    "audio/aac": ".aac",
    "audio/pcm": ".pcm",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
}


def extension_for(content_type: str | None) -> str:
    """A file extension for a MIME type; `.bin` when unknown."""
    if not content_type:
        return ".bin"
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime.startswith("multipart/"):
        return ".multipart"
    return _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ".bin"


class BlobSink:
    """One file being written; `finish` returns its reference, `abort` removes it."""

    def __init__(
        self,
        root: Path,
        relative: str,
        ref_fields: dict[str, str | None],
        hash_content: bool = True,
    ) -> None:
        self._root = root
        self._relative = relative
        self._fields = ref_fields
        self._digest = hashlib.sha256() if hash_content else None
        self._size = 0
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed in finish/abort

    def write(self, data: bytes) -> None:
        if self._file is None:
            return
        self._file.write(data)
        if self._digest is not None:
            self._digest.update(data)
        self._size += len(data)

    def finish(self, sha256: str | None = None) -> FileRef:
        """Close the file; `sha256` is the caller's digest when it hashed the bytes itself.

        An OSError here (the last bytes could not be flushed) leaves the file for `abort`.
        """
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
        return FileRef(
            id=new_id(),
            record_id=self._fields["record_id"] or "",
            direction=self._fields["direction"] or "",
            kind=self._fields["kind"] or "body",
            path=self._relative,
            content_type=self._fields["content_type"],
            size=self._size,
            sha256=sha256 or (self._digest.hexdigest() if self._digest else ""),
            created_at=iso(datetime.now(UTC).timestamp()) or "",
        )

    def abort(self) -> None:
        """Close and delete the file: no partial body stays on disk without a files row."""
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._root / self._relative)


class BlobStore:
    """Creates files for bodies under one root folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.errors = ThrottledLog(log)  # disk errors under this root, one line per kind a minute

    def open(
        self,
        record_id: str,
        provider: str,
        direction: str,
        content_type: str | None,
        kind: str = "body",
        suffix: str = "",
        hash_content: bool = True,
    ) -> BlobSink:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        name = f"{record_id}-{direction}{suffix}{extension_for(content_type)}"
        relative = f"{_safe(provider)}/{day}/{_safe(name)}"
        fields = {
            "record_id": record_id,
            "direction": direction,
            "kind": kind,
            "content_type": content_type,
        }
        return BlobSink(self.root, relative, fields, hash_content)

    def save(
        self,
        data: bytes,
        record_id: str,
        provider: str,
        direction: str,
        content_type: str | None,
        kind: str = "body",
        suffix: str = "",
    ) -> FileRef:
        sink = self.open(record_id, provider, direction, content_type, kind, suffix)
        try:
            sink.write(data)
            return sink.finish()
        except BaseException:
            sink.abort()
            raise

    def path_of(self, ref: FileRef) -> Path:
        return self.root / ref.path

    def rewrite(self, path: Path, data: bytes) -> None:
        """Replace a stored file's content whole, or not at all (a full disk leaves the old)."""
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def remove(self, relative: str) -> None:
        """Delete a stored file given its relative path; never outside the root."""
        target = (self.root / relative).resolve()
        if self.root.resolve() not in target.parents:
            return
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def _safe(name: str) -> str:
    """Keep a path component to letters, digits and `._-` (defence in depth)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return cleaned.lstrip(".") or "_"
