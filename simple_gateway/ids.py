"""Request ids: sortable by creation time, unique across workers, safe in headers and paths."""

from __future__ import annotations

import base64
import random
import re
import time

_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    # random is re-seeded from the OS in every forked worker; ids need uniqueness, not secrecy.
    value = (int(time.time() * 1000) << 80) | random.getrandbits(80)
    # 26 base32 digits are 130 bits: left-aligned in 160 bits, they are the first 26 of 32.
    return (
        base64.b32encode((value << 30).to_bytes(20, "big"))[:26].translate(_TO_CROCKFORD).decode()
    )


def accept_client_id(value: str | None) -> str | None:
    """The client's x-request-id if it is a plain token we can store and echo, else None."""
    if value and _CLIENT_ID.fullmatch(value):
        return value
    return None
