"""Request ids: sortable by creation time, unique across workers, safe in headers and paths."""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def accept_client_id(value: str | None) -> str | None:
    """The client's x-request-id if it is a plain token we can store and echo, else None."""
    if value and _CLIENT_ID.fullmatch(value):
        return value
    return None
