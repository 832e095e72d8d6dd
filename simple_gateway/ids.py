"""Request ids: sortable by creation time, unique across workers, safe in headers and paths."""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Callable
from typing import Any

_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ENVIRON_KEY = "simple_gateway.request_id"  # the id a page's response carries, for its record


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


def stamp_responses(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Callable[..., Any]:
    """A start_response that gives the response an x-request-id unless it has one.

    The id is the client's valid one or a new ULID; it is also left in the environ under
    ENVIRON_KEY so whatever records the request can use the same id.
    """
    request_id = accept_client_id(environ.get("HTTP_X_REQUEST_ID")) or new_id()
    environ[ENVIRON_KEY] = request_id

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not any(name.lower() == "x-request-id" for name, _ in headers):
            headers = [*headers, ("x-request-id", request_id)]
        return start_response(status, headers, exc_info)

    return start
