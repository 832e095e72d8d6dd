"""The client address a record keeps, believing `X-Forwarded-For` only from trusted proxies.

Behind a reverse proxy every connection comes from the proxy, and the real client is in
`X-Forwarded-For`. Anyone can write that header, so it is read only when the connection
comes from an address in TRUSTED_PROXIES, and then from the right: each proxy appends the
address it saw, so the first address from the right that is not a trusted proxy is the
client. Without TRUSTED_PROXIES the header is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from simple_gateway.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(environ: dict[str, Any], trusted: Sequence[IPNetwork]) -> str | None:
    """The address of the client that made this request, as far as it can be trusted."""
    peer = environ.get("REMOTE_ADDR")
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    client = peer
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        address = _parse(hop)
        if address is None:
            break  # a malformed entry: nothing to its left can be trusted
        client = str(address)
        if not _is_trusted(client, trusted):
            break
    return client


def _is_trusted(address: str | None, trusted: Sequence[IPNetwork]) -> bool:
    parsed = _parse(address or "")
    return parsed is not None and any(parsed in network for network in trusted)


def _parse(text: str) -> IPAddress | None:
    """An address from a header entry: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
