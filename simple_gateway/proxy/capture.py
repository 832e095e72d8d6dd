"""A bounded copy of a body as it streams past, for the record.

Text bodies up to the inline limit are kept in memory; a longer text body moves to a
file (the first `inline_limit` bytes stay inline as a preview) and binary bodies go to
a file from their first byte. Memory per body is bounded by the inline limit whatever
the body's size. A failing disk stops the copy, never the exchange: the record then
says the body was not kept.
"""

from __future__ import annotations

import hashlib

from simple_gateway.records.blobs import BlobSink, BlobStore
from simple_gateway.records.model import BodyCapture

_BINARY_PREFIXES = ("image/", "audio/", "video/", "multipart/", "application/octet-stream")
_BINARY_TYPES = frozenset({"application/pdf", "application/zip", "application/gzip"})


def is_binary(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith(_BINARY_PREFIXES) or mime in _BINARY_TYPES


class BodyTap:
    """Receives every chunk of one body; `finish` gives what the record keeps.

    When the body's file cannot be written (disk full, folder read-only) or the body is
    refused (over the size limit), the file is deleted at once and `missing` says why:
    no partial file stays on disk, and the record tells why its body is not there.
    """

    def __init__(
        self,
        blobs: BlobStore,
        inline_limit: int,
        record_id: str,
        provider: str,
        direction: str,
        content_type: str | None,
        content_encoding: str | None = None,
    ) -> None:
        self._blobs = blobs
        self._limit = inline_limit
        self._names = (record_id, provider, direction)
        self._content_type = content_type
        self._encoding = content_encoding
        self._binary = is_binary(content_type)
        self._inline: list[bytes] = []
        self._inline_size = 0
        self._sink: BlobSink | None = None
        self.missing: str | None = None  # why the body's file is not kept
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.digest.update(chunk)
        if self._sink is None and not self._binary and self.size <= self._limit:
            self._inline.append(chunk)
            self._inline_size += len(chunk)
            return
        if self.missing is not None:
            return
        try:
            if self._sink is None:
                self._sink = self._open_sink()
            self._sink.write(chunk)
        except OSError as exc:
            self._disk_failed(exc)

    def discard(self, reason: str) -> None:
        """Stop keeping the body: delete its file (if any) and note why."""
        if self.missing is None:
            self.missing = reason
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()

    def _disk_failed(self, exc: OSError) -> None:
        self.discard(f"{self._names[2]} body not kept on disk: {exc.strerror or exc}")
        self._blobs.errors.error(
            f"{type(exc).__name__}:{exc.errno}",
            "cannot keep %s body of %s on disk: %s",
            self._names[2],
            self._names[0],
            exc,
        )

    def _open_sink(self) -> BlobSink:
        record_id, provider, direction = self._names
        sink = self._blobs.open(
            record_id, provider, direction, self._content_type, hash_content=False
        )
        try:
            for part in self._inline:  # a text body that outgrew the limit: the file holds it all
                sink.write(part)
        except BaseException:
            sink.abort()
            raise
        return sink

    def finish(self) -> BodyCapture:
        inline = b"".join(self._inline)
        capture = BodyCapture(
            inline=inline,
            truncated=len(inline) < self.size,
            size=self.size,
            content_type=self._content_type,
            content_encoding=self._encoding,
        )
        if self._sink is not None and self.missing is None:
            try:
                capture.file = self._sink.finish(sha256=self.digest.hexdigest())
            except OSError as exc:
                self._disk_failed(exc)
        capture.missing = self.missing
        return capture

    def hexdigest(self) -> str:
        return self.digest.hexdigest()
