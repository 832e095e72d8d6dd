"""How a stored exchange is shown: bodies pretty-printed, base64 collapsed, secrets masked.

Everything here returns plain text; templates escape it and scripts set it with
`textContent`, so nothing from a prompt or a reply is ever interpreted as markup.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from typing import Any

from simple_gateway.redaction import REDACTED, is_secret_name, redact_value

BASE64_MIN = 256  # shorter strings are shown as they are
_BASE64 = re.compile(r"^(data:([\w.+-]+/[\w.+-]+)?(;[\w=.-]+)*;base64,)?[A-Za-z0-9+/=\r\n_-]+$")
_DATA_URI_IN_TEXT = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=]{256,}")
# Key-looking values: provider key prefixes, bearer tokens, long opaque tokens after "key".
_KEYLIKE = re.compile(
    r"(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|"
    r"r8_[A-Za-z0-9]{20,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,})"
)
# Headers a curl command should not repeat: the transport sets them.
_CURL_SKIP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "accept-encoding",
        "transfer-encoding",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
KEY_PLACEHOLDER = "$API_KEY"


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def collapse_base64(value: Any) -> Any:
    """A JSON value with long base64 strings (or data URIs) replaced by a note of their size."""
    if isinstance(value, dict):
        return {k: collapse_base64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [collapse_base64(v) for v in value]
    if isinstance(value, str) and len(value) >= BASE64_MIN and " " not in value[:200]:
        match = _BASE64.match(value)
        if match:
            kind = match.group(2) or "base64"
            decoded = (len(value) - len(match.group(1) or "")) * 3 // 4
            return f"[{kind}, {size_text(decoded)} base64 collapsed]"
    return value


def pretty_body(text: str | None, content_type: str | None = None) -> str:
    """A body for reading: JSON indented with base64 collapsed, SSE events likewise."""
    if not text:
        return ""
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            return json.dumps(collapse_base64(json.loads(text)), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    if "text/event-stream" in (content_type or "") or stripped.startswith(("data:", "event:")):
        return sse_pretty(text)
    return _DATA_URI_IN_TEXT.sub(lambda m: _collapsed(m.group(0)), text)


def sse_pretty(text: str) -> str:
    """An SSE transcript with each event's JSON data on one line, base64 collapsed."""
    lines = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            with contextlib.suppress(ValueError):
                line = "data: " + json.dumps(
                    collapse_base64(json.loads(payload)), ensure_ascii=False
                )
        lines.append(line)
    return "\n".join(lines)


def sse_events(text: str | None) -> int:
    return sum(1 for line in (text or "").splitlines() if line.startswith("data:"))


def _collapsed(uri: str) -> str:
    kind = uri[5 : uri.index(";")]
    return f"[{kind}, {size_text(len(uri) * 3 // 4)} base64 collapsed]"


def mask_headers(raw: str | dict[str, Any] | None) -> list[tuple[str, str]]:
    """Stored headers (already redacted) as pairs, masked again as a safety net."""
    headers: Any = raw
    if isinstance(raw, str):
        try:
            headers = json.loads(raw or "{}")
        except ValueError:
            return [("(unreadable)", "")]
    if not isinstance(headers, dict):
        return []
    pairs = []
    for name, value in headers.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        pairs.append((str(name), mask_value(str(name), shown)))
    return sorted(pairs)


def mask_value(name: str, value: str) -> str:
    if is_secret_name(name) and value and not value.startswith(REDACTED):
        return redact_value(value)
    return mask_text(value)


def mask_text(text: str) -> str:
    """Free text with key-looking substrings replaced by their redacted form."""
    return _KEYLIKE.sub(lambda m: redact_value(m.group(0)), text)


def curl_command(base_url: str, row: dict[str, Any]) -> str:
    """A curl command repeating the request through the gateway, the key as a placeholder."""
    url = base_url.rstrip("/") + row["path"] + (f"?{row['query']}" if row.get("query") else "")
    parts = ["curl", shlex.quote(url)]
    if row["method"] != "GET":
        parts += ["-X", row["method"]]
    headers = mask_headers(row.get("request_headers"))
    for name, value in headers:
        if name in _CURL_SKIP:
            continue
        if is_secret_name(name) or value.startswith(REDACTED):
            scheme = "Bearer " if name == "authorization" else ""
            # The fixed text is quoted; only the placeholder is left for the shell to expand.
            parts += ["-H", shlex.quote(f"{name}: {scheme}") + f'"{KEY_PLACEHOLDER}"']
            continue
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    body = row.get("request_body")
    if body and not row.get("request_body_truncated"):
        parts += ["--data-binary", shlex.quote(mask_text(body))]
    elif row.get("request_body_size"):
        parts += ["--data-binary", "@request-body.bin"]
    return " \\\n  ".join(_pairs(parts))


def _pairs(parts: list[str]) -> list[str]:
    """curl arguments grouped one option per line."""
    lines = [" ".join(parts[:2])]
    index = 2
    while index < len(parts):
        lines.append(f"{parts[index]} {parts[index + 1]}")
        index += 2
    return lines
