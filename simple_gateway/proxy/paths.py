"""Request paths the gateway refuses: those with dot-segments, however they are spelled.

A `..` in a forwarded path can climb out of the path prefix of a provider's base URL
(`https://host/some/prefix` + `/../../admin`) or out of one provider's route into
another's once a server on the way normalises it. So a path is refused when any of
its segments is `.` or `..` in any spelling a server on the way might decode: plain,
percent-encoded (`%2e%2e`, `%2E%2E`), encoded twice (`%252e`), or split off by an
encoded slash or a backslash (`..%2f`, `..\\`). Encoded slashes without dots pass:
some model names contain them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

_SEPARATORS = re.compile(r"[/\\]")
_DOTS = frozenset({".", ".."})
_DECODINGS = 3  # percent-decodings tried; servers on the way decode once, rarely twice


def dot_segment(path: str) -> str | None:
    """The first segment of `path` that is a dot-segment in some decoding, else None."""
    if "." not in path and "%" not in path:
        return None
    for segment in path.split("/"):
        text = segment
        for _ in range(_DECODINGS):
            if any(part in _DOTS for part in _SEPARATORS.split(text)):
                return segment
            decoded = unquote(text)
            if decoded == text:
                break
            text = decoded
    return None


def unsafe_path(environ: dict[str, Any]) -> str | None:
    """The dot-segment in the request's raw path (RAW_URI) or its decoded PATH_INFO, if any."""
    raw = environ.get("RAW_URI") or ""
    return dot_segment(raw.split("?", 1)[0]) or dot_segment(environ.get("PATH_INFO") or "")
