"""Header handling at the proxy boundary: hop-by-hop removal in both directions.

WSGI hands request headers over as `HTTP_*` environ keys; they are turned back into
names here. Everything else passes as the client or the provider sent it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# RFC 9110 section 7.6.1, plus the de-facto ones proxies also drop. `Expect` is handled
# by the front server; `Host` is set for the upstream by the HTTP client.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
    }
)

# Where a request carries its key, on every provider type (lower case).
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})

_ENVIRON_NAMES: dict[str, str] = {}


def _header_name(environ_key: str) -> str:
    name = _ENVIRON_NAMES.get(environ_key)
    if name is None:
        name = "-".join(part.capitalize() for part in environ_key[5:].split("_"))
        _ENVIRON_NAMES[environ_key] = name
    return name


def request_headers(environ: Mapping[str, object]) -> dict[str, str]:
    """The client's request headers from a WSGI environ, names in canonical case."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[_header_name(key)] = str(value)
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = str(environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        headers["Content-Length"] = str(environ["CONTENT_LENGTH"])
    return headers


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(","))
    return tokens


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers and any header the Connection header names."""
    pairs = list(headers)
    named = _connection_tokens(pairs)
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]
