"""The scrubber removes the request's secrets wherever a record keeps them, in any echo."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import BodyCapture, FileRef, GuardrailRun, Record
from simple_gateway.records.scrub import SecretScrubber
from simple_gateway.redaction import fingerprint

SECRET = "sk-proj_Ab12/cd34+ef56 gh78"  # `_`, `/`, `+` and a space: each has its encodings
SHOWN = f"[REDACTED] sha256:{fingerprint(SECRET)}"


def echoes() -> list[str]:
    """The secret as providers plausibly echo it back."""
    return [
        SECRET,
        quote(SECRET, safe=""),  # %2F %2B %20
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(SECRET, safe="")),  # %2f
        quote(SECRET, safe="").replace("_", "%5F").replace("-", "%2D"),
        quote_plus(SECRET, safe=""),  # + for the space
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" if not c.isalnum() else c for c in SECRET),
        "".join(f"\\u{ord(c):04X}" if not c.isalnum() else c for c in SECRET),
    ]


@pytest.mark.parametrize("echo", echoes())
def test_each_encoding_of_a_secret_is_scrubbed_everywhere(tmp_path: Path, echo: str) -> None:
    blobs = BlobStore(tmp_path)
    ref = FileRef("f1", "r1", "response", "body", "p/r1-response.bin", None, 0, "", "")
    (tmp_path / "p").mkdir()
    (tmp_path / ref.path).write_bytes(f"file: {echo} end".encode())
    record = Record(
        id="r1", request_id="r1", started_at=0, provider="openai", method="POST", path="/"
    )
    record.request_body = BodyCapture(inline=f'{{"echo": "{echo}"}}'.encode())
    record.response_body = BodyCapture(inline=f"error: {echo}!".encode(), file=ref)
    record.response_text = f"text {echo}"
    record.error_message = f"upstream said {echo}"
    record.response_headers = {"x-echo": echo}
    run = GuardrailRun("g1", 0, "pii", "regex", "output", 1, "replace", True, 1.0)
    run.original_text, run.reason = f"reply {echo}", f"found {echo}"
    record.guardrail_runs = [run]
    record.secrets = [SECRET, "sk-proj_Ab12"]

    SecretScrubber(blobs)(record)

    kept = [
        record.request_body.inline.decode(),
        record.response_body.inline.decode(),
        (tmp_path / ref.path).read_text(),
        record.response_text,
        record.error_message,
        record.response_headers["x-echo"],
        run.original_text,
        run.reason,
    ]
    for text in kept:
        assert SHOWN in text, text
        assert "Ab12" not in text and "gh78" not in text, text
    assert record.response_body.inline == f"error: {SHOWN}!".encode()


def test_text_without_the_secret_is_left_byte_for_byte(tmp_path: Path) -> None:
    record = Record(
        id="r1", request_id="r1", started_at=0, provider="openai", method="GET", path="/"
    )
    body = b'{"a": "sk-proj other", "b": "\\u0041%41+"}'
    record.response_body = BodyCapture(inline=body)
    record.secrets = [SECRET]
    SecretScrubber(BlobStore(tmp_path))(record)
    assert record.response_body.inline == body


def test_secret_fields_of_a_json_body_are_redacted_at_any_depth(tmp_path: Path) -> None:
    body = (
        b'{"model": "m", "max_tokens": 9, "api_key": "sk-field-value-1", "token": "t0k3n",'
        b' "tools": [{"auth": {"apiKey": "nested\\/value-2", "password": "pw"}}],'
        b' "messages": [{"content": "my key is sk-field-value-1"}], "secret": 42}'
    )
    record = Record(
        id="r1", request_id="r1", started_at=0, provider="openai", method="POST", path="/"
    )
    record.request_body = BodyCapture(inline=body, content_type="application/json")
    record.response_body = BodyCapture(inline=b'{"echo": "sk-field-value-1"}')
    record.upstream_request_body = '{"model": "m", "key": "k-short", "max_tokens": 9}'
    SecretScrubber(BlobStore(tmp_path))(record)

    assert json.loads(record.upstream_request_body)["key"].startswith("[REDACTED] sha256:")
    assert json.loads(record.upstream_request_body)["max_tokens"] == 9

    stored = json.loads(record.request_body.inline)
    assert stored["api_key"] == f"[REDACTED] sha256:{fingerprint('sk-field-value-1')}"
    assert stored["token"] == f"[REDACTED] sha256:{fingerprint('t0k3n')}"
    nested = stored["tools"][0]["auth"]
    assert nested["apiKey"] == f"[REDACTED] sha256:{fingerprint('nested/value-2')}"
    assert nested["password"].startswith("[REDACTED] sha256:")
    assert (stored["model"], stored["max_tokens"], stored["secret"]) == ("m", 9, 42)
    assert b"sk-field-value-1" not in record.request_body.inline  # its echo in text too
    assert b"sk-field-value-1" not in record.response_body.inline


def test_json_fields_are_redacted_in_a_body_kept_on_disk_and_in_its_cut_preview(
    tmp_path: Path,
) -> None:
    body = b'{"pad": "' + b"x" * 100 + b'", "api_key": "sk-long-value-in-a-file"}'
    ref = FileRef("f1", "r1", "request", "body", "p/r1-request.json", None, len(body), "", "")
    (tmp_path / "p").mkdir()
    (tmp_path / ref.path).write_bytes(body)
    record = Record(
        id="r1", request_id="r1", started_at=0, provider="openai", method="POST", path="/"
    )
    preview = body[: body.index(b"in-a-file")]
    record.request_body = BodyCapture(
        inline=preview, truncated=True, content_type="application/json", file=ref
    )
    SecretScrubber(BlobStore(tmp_path))(record)
    assert b"sk-long" not in (tmp_path / ref.path).read_bytes()
    assert json.loads((tmp_path / ref.path).read_bytes())["api_key"].startswith("[REDACTED]")
    assert b"sk-long" not in record.request_body.inline


def test_bodies_that_are_not_json_keep_their_fields(tmp_path: Path) -> None:
    body = b'{"api_key": "short"}'
    record = Record(
        id="r1", request_id="r1", started_at=0, provider="openai", method="POST", path="/"
    )
    record.request_body = BodyCapture(inline=body, content_type="text/plain")
    SecretScrubber(BlobStore(tmp_path))(record)
    assert record.request_body.inline == body
