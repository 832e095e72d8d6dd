"""Finished records pass through their provider on the way to the writer.

Most providers hand a record straight on; one that has follow-up work (Replicate
archiving the outputs a prediction names) holds it until that work is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from simple_gateway.providers.base import Provider
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import Record


class RecordSink(Protocol):
    def submit(self, record: Record) -> None: ...


class ProviderSink:
    def __init__(
        self, records: RecordSink, providers: Mapping[str, Provider], blobs: BlobStore | None
    ) -> None:
        self.records = records
        self.providers = providers
        self.blobs = blobs

    def submit(self, record: Record) -> None:
        provider = self.providers.get(record.provider)
        if provider is None:
            self.records.submit(record)
        else:
            provider.finish(record, self.records.submit, self.blobs)

    def close(self, timeout: float) -> None:
        """Let each provider finish its follow-up work; what is left is submitted as is."""
        for provider in self.providers.values():
            provider.close(timeout)
