"""Replicate: predictions and models, `Token`/`Bearer` keys, and outputs archived as files.

Predictions name their outputs by URL (`"output": "https://replicate.delivery/..."`,
or a list of them); those URLs expire within an hour. When a prediction reply names
outputs on one of the provider's `archive_hosts` (default: Replicate's delivery
domain), `OutputArchiver` downloads them in the background and the record is written
with the files attached. No other host is ever contacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from simple_gateway.errors import GatewayError
from simple_gateway.providers.http import HTTPProvider
from simple_gateway.providers.replicate_archive import OutputArchiver
from simple_gateway.proxy.transport import Network
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import Record
from simple_gateway.records.usage import JSON, Usage
from simple_gateway.settings import ProviderConfig

DEFAULT_ARCHIVE_HOSTS = ("replicate.delivery",)

_TITLES = {401: "Unauthenticated", 404: "Not found", 413: "Request too large"}


class ReplicateProvider(HTTPProvider):
    """api.replicate.com: `Authorization: Bearer <token>` (or the older `Token <token>`)."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"archive_hosts"})

    def __init__(self, config: ProviderConfig, network: Network) -> None:
        super().__init__(config, network)
        hosts = config.options.get("archive_hosts", list(DEFAULT_ARCHIVE_HOSTS))
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError("archive_hosts: expected a list of host names ([] to archive nothing)")
        self.archiver = OutputArchiver(
            config.name, [h.lower() for h in hosts], ca_bundle=network.ca_bundle
        )

    def error_body(self, error: GatewayError) -> bytes:
        title = _TITLES.get(error.status, "Gateway error")
        payload = {"title": title, "detail": error.message, "status": error.status}
        return json.dumps(payload).encode()

    def finish(
        self, record: Record, submit: Callable[[Record], None], blobs: BlobStore | None
    ) -> None:
        self.archiver.finish(record, submit, blobs)

    def close(self, timeout: float) -> None:
        self.archiver.close(timeout)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ReplicatePrediction:
    """A prediction object; language models report token counts under `metrics`."""

    def matches(self, obj: JSON) -> bool:
        return isinstance(obj.get("urls"), dict) and "status" in obj and "output" in obj

    def usage(self, obj: JSON) -> Usage | None:
        metrics = obj.get("metrics")
        if not isinstance(metrics, dict):
            return None
        inp = _int(metrics.get("input_token_count"))
        out = _int(metrics.get("output_token_count"))
        if inp is None and out is None:
            return None
        return Usage(input_tokens=inp, output_tokens=out, source="response.body")

    def text(self, obj: JSON) -> str | None:
        output = obj.get("output")
        if not isinstance(output, list) or not all(isinstance(o, str) for o in output):
            return None
        if not output or any(o.startswith(("http://", "https://")) for o in output):
            return None
        return "".join(output)  # a language model's tokens
