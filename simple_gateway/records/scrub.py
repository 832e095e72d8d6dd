"""Removes the request's own secret values from everything a record keeps.

Headers and query strings are redacted where they are read; this catches the same
values where they turn up again: a provider's error body that echoes the key, an
assembled text, a body kept on disk. It runs in the writer thread, before a record
is written or spooled.
"""

from __future__ import annotations

from pathlib import Path

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import BodyCapture, Record
from simple_gateway.redaction import redact_json_fields, scrub_bytes, scrub_text

_FILE_SCAN_LIMIT = 64 * 1024 * 1024


class SecretScrubber:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def __call__(self, record: Record) -> None:
        found = self._redact_body_fields(record.request_body)
        secrets = [s for s in record.secrets if s] + [s for s in found if len(s) >= 8]
        record.secrets = []
        if not secrets:
            return
        for capture in (record.request_body, record.response_body):
            capture.inline = scrub_bytes(capture.inline, secrets)
            self._scrub_file(capture, secrets)
        for name in (
            "response_text",
            "error_message",
            "upstream_url",
            "query",
            "upstream_request_body",
        ):
            value = getattr(record, name)
            if value:
                setattr(record, name, scrub_text(value, secrets))
        for headers in (record.request_headers, record.response_headers):
            for name, value in headers.items():
                headers[name] = scrub_text(value, secrets)
        for ref in record.files:
            self._scrub_path(self.blobs.root / ref.path, secrets)

    def _redact_body_fields(self, capture: BodyCapture) -> list[str]:
        """Redact secret fields of a JSON body, inline and on disk; the values found."""
        if "json" not in (capture.content_type or "").lower() or capture.content_encoding:
            return []
        capture.inline, found = redact_json_fields(capture.inline)
        if capture.file is not None:
            path = self.blobs.path_of(capture.file)
            try:
                if path.stat().st_size <= _FILE_SCAN_LIMIT:
                    data, in_file = redact_json_fields(path.read_bytes())
                    if in_file:
                        path.write_bytes(data)
                        found += in_file
            except OSError as exc:
                self.blobs.errors.error(
                    f"redact:{exc.errno}", "could not redact key fields in %s: %s", path, exc
                )
        return found

    def _scrub_file(self, capture: BodyCapture, secrets: list[str]) -> None:
        if capture.file is not None:
            self._scrub_path(self.blobs.path_of(capture.file), secrets)

    def _scrub_path(self, path: Path, secrets: list[str]) -> None:
        try:
            if path.stat().st_size > _FILE_SCAN_LIMIT:
                return
            data = path.read_bytes()
            cleaned = scrub_bytes(data, secrets)
            if cleaned != data:
                path.write_bytes(cleaned)
        except OSError as exc:
            self.blobs.errors.error(
                f"scrub:{exc.errno}", "could not scrub secrets from %s: %s", path, exc
            )
