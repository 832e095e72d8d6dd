"""`GET /v1/models`: the default provider's list, its query passed on, with the aliases added."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from simple_gateway.providers import Route
from simple_gateway.proxy.upstream import Response, UpstreamConnection
from simple_gateway.records.model import Record
from simple_gateway.translate.base import BodyTransform, Buffered, dumps

_REPLACED = frozenset({"content-length", "content-encoding", "content-type"})


def with_aliases(data: bytes, aliases: Mapping[str, Any]) -> bytes:
    """The provider's model list with one entry per alias it does not list already."""
    try:
        listing = json.loads(data)
    except ValueError:
        return data
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        return data
    listed = {m.get("id") for m in listing["data"] if isinstance(m, dict)}
    for alias in aliases:
        if alias not in listed:
            entry = {"id": alias, "object": "model", "created": 0, "owned_by": "simple-gateway"}
            listing["data"].append(entry)
    return dumps(listing)


class ModelsListing:
    def __init__(self, aliases: Mapping[str, Any], route: Route) -> None:
        self.aliases = aliases
        self.route = route

    def send(
        self,
        send: Callable[..., tuple[UpstreamConnection, Response]],
        stopped: Callable[[], bool],
        record: Record,
        outgoing: dict[str, str],
    ) -> tuple[UpstreamConnection, Response]:
        headers = {k: v for k, v in outgoing.items() if k.lower() != "accept-encoding"}
        headers["Accept-Encoding"] = "identity"  # the list is rewritten, so it must be readable
        target = self.route.provider.target(self.route.upstream_path)
        return send(target, "GET", headers, None, None)

    def transform(self, response: Response) -> BodyTransform | None:
        content_type = response.getheader("Content-Type") or ""
        if response.status != 200 or not content_type.startswith("application/json"):
            return None
        aliases = self.aliases
        return Buffered(lambda data: with_aliases(data, aliases))

    def client_headers(
        self, headers: list[tuple[str, str]], transform: BodyTransform | None
    ) -> list[tuple[str, str]]:
        if transform is None:
            return headers
        kept = [(n, v) for n, v in headers if n.lower() not in _REPLACED]
        return [*kept, ("Content-Type", transform.content_type)]
