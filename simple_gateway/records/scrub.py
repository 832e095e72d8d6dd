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
from simple_gateway.redaction import SecretSet, is_json_body, redact_json_fields

_FILE_SCAN_LIMIT = 64 * 1024 * 1024
# Text fields of a record that may hold a secret value the request carried.
_TEXT_FIELDS = ("response_text", "error_message", "upstream_url", "query", "upstream_request_body")
_RUN_TEXT_FIELDS = ("original_text", "override_text", "reason", "error")


def scrub_fields(record: Record, secrets: SecretSet) -> None:
    """Scrub the record's text fields, header values and guardrail runs' texts in place.

    Bodies and files are not touched here.

    Header values matter as much as bodies: a header whose name says nothing of a
    secret (an echo, a custom header) can still carry the key the request sent.
    """
    for name in _TEXT_FIELDS:
        value = getattr(record, name)
        if value:
            setattr(record, name, secrets.text(value))
    for headers in (record.request_headers, record.response_headers):
        for name, value in headers.items():
            headers[name] = secrets.text(value)
    for run in record.guardrail_runs:
        for name in _RUN_TEXT_FIELDS:
            value = getattr(run, name)
            if value:
                setattr(run, name, secrets.text(value))


class SecretScrubber:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def __call__(self, record: Record) -> None:
        found = self._redact_body_fields(record.request_body)
        if record.upstream_request_body:  # the client's body as translated for the provider
            body, in_translation = redact_json_fields(record.upstream_request_body.encode())
            if in_translation:
                record.upstream_request_body = body.decode("utf-8", "replace")
                found += in_translation
        secrets = SecretSet([*record.secrets, *(s for s in found if len(s) >= 8)])
        record.secrets = []
        if not secrets:
            return
        for capture in (record.request_body, record.response_body):
            capture.inline = secrets.bytes(capture.inline)
            self._scrub_file(capture, secrets)
        scrub_fields(record, secrets)
        for ref in record.files:
            self._scrub_path(self.blobs.root / ref.path, secrets)

    def _redact_body_fields(self, capture: BodyCapture) -> list[str]:
        """Redact secret fields of a JSON body, inline and on disk; the values found."""
        if not is_json_body(capture.content_type, capture.content_encoding):
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

    def _scrub_file(self, capture: BodyCapture, secrets: SecretSet) -> None:
        if capture.file is not None:
            self._scrub_path(self.blobs.path_of(capture.file), secrets)

    def _scrub_path(self, path: Path, secrets: SecretSet) -> None:
        try:
            if path.stat().st_size > _FILE_SCAN_LIMIT:
                return
            data = path.read_bytes()
            cleaned = secrets.bytes(data)
            if cleaned != data:
                path.write_bytes(cleaned)
        except OSError as exc:
            self.blobs.errors.error(
                f"scrub:{exc.errno}", "could not scrub secrets from %s: %s", path, exc
            )
