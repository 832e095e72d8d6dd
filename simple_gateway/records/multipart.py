"""One small text field of a multipart/form-data body, found without reading it all.

An audio transcription names its model in a form field next to a file of up to 25 MB,
before or after it. The body is scanned in chunks for part delimiters; only each part's
head is parsed, and only the wanted field's value is kept, so memory stays bounded by the
chunk size whatever the body's size, and the scan stops at the field or at a byte limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message

_CHUNK = 256 * 1024
_HEAD_LIMIT = 2048  # a part's headers, at most
_VALUE_LIMIT = 256  # a model name, at most
_SCAN_LIMIT = 64 * 1024 * 1024
_NAME = re.compile(rb'(?i)content-disposition:[^\r\n]*?[;\s]name="([^"]*)"([^\r\n]*)')


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data content type, or None for anything else."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
        return None
    return boundary.encode("latin-1", "replace")


def form_field(read: Callable[[int], bytes], boundary: bytes, name: str) -> str | None:
    """The text value of form field `name` (not a file), read through `read(n)`, or None."""
    delimiter = b"--" + boundary
    wanted = name.encode()
    buffer = b"\r\n"  # so the first delimiter, at the very start, is found like the others
    scanned = 0
    ended = False
    while True:
        start = buffer.find(b"\r\n" + delimiter)
        needed = start + 2 + len(delimiter) + _HEAD_LIMIT + _VALUE_LIMIT + len(delimiter) + 4
        if start >= 0 and (len(buffer) >= needed or ended):
            head_at = start + 2 + len(delimiter)
            if buffer[head_at : head_at + 2] != b"\r\n":
                if buffer[head_at : head_at + 2] == b"--":
                    return None  # the closing delimiter: no such field
                buffer = buffer[head_at:]
                continue
            head_end = buffer.find(b"\r\n\r\n", head_at, head_at + _HEAD_LIMIT)
            if head_end < 0:
                buffer = buffer[head_at:]
                continue
            match = _NAME.search(buffer, head_at, head_end + 2)
            if match and match.group(1) == wanted and b"filename" not in match.group(2):
                value_at = head_end + 4
                value_end = buffer.find(b"\r\n" + delimiter, value_at)
                if value_end < 0 or value_end - value_at > _VALUE_LIMIT:
                    return None
                return buffer[value_at:value_end].decode("utf-8", "replace").strip() or None
            buffer = buffer[head_end:]
            continue
        if ended or scanned >= _SCAN_LIMIT:
            return None
        chunk = read(_CHUNK)
        scanned += len(chunk)
        ended = not chunk
        if start < 0:  # keep only what could still begin a delimiter
            buffer = buffer[-(len(delimiter) + 2) :]
        buffer += chunk
