"""Removes the request's own secret values from everything a record keeps.

Headers and query strings are redacted where they are read; this catches the same
values where they turn up again: a provider's error body that echoes the key, an
assembled text, a body kept on disk. It runs in the writer thread, before a record
is written or spooled.
"""

from __future__ import annotations

import logging
from pathlib import Path

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import BodyCapture, Record
from simple_gateway.redaction import redact_value

log = logging.getLogger(__name__)

_FILE_SCAN_LIMIT = 64 * 1024 * 1024


class SecretScrubber:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def __call__(self, record: Record) -> None:
        secrets = [s for s in record.secrets if s]
        record.secrets = []
        if not secrets:
            return
        replacements = [(s.encode(), redact_value(s).encode()) for s in secrets]
        for capture in (record.request_body, record.response_body):
            capture.inline = _replace(capture.inline, replacements)
            self._scrub_file(capture, replacements)
        for name in (
            "response_text",
            "error_message",
            "upstream_url",
            "query",
            "upstream_request_body",
        ):
            value = getattr(record, name)
            if value:
                setattr(record, name, _replace_text(value, replacements))
        for headers in (record.request_headers, record.response_headers):
            for name, value in headers.items():
                headers[name] = _replace_text(value, replacements)
        for ref in record.files:
            self._scrub_path(self.blobs.root / ref.path, replacements)

    def _scrub_file(self, capture: BodyCapture, replacements: list[tuple[bytes, bytes]]) -> None:
        if capture.file is not None:
            self._scrub_path(self.blobs.path_of(capture.file), replacements)

    def _scrub_path(self, path: Path, replacements: list[tuple[bytes, bytes]]) -> None:
        try:
            if path.stat().st_size > _FILE_SCAN_LIMIT:
                return
            data = path.read_bytes()
            cleaned = _replace(data, replacements)
            if cleaned != data:
                path.write_bytes(cleaned)
        except OSError as exc:
            log.warning("could not scrub secrets from %s: %s", path, exc)


def _replace(data: bytes, replacements: list[tuple[bytes, bytes]]) -> bytes:
    for secret, shown in replacements:
        if secret in data:
            data = data.replace(secret, shown)
    return data


def _replace_text(text: str, replacements: list[tuple[bytes, bytes]]) -> str:
    for secret, shown in replacements:
        token = secret.decode()
        if token in text:
            text = text.replace(token, shown.decode())
    return text
