"""Retention: forget exchanges older than a number of days or beyond a number of rows.

Runs as the writer's maintenance, in the writer thread that owns the store, so purges
take turns with writes instead of competing with them. Bodies kept as files go with
their rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import iso
from simple_gateway.store.base import Store

log = logging.getLogger(__name__)


class Retention:
    """Purges a store when called with it; a no-op when neither limit is set."""

    def __init__(self, blobs: BlobStore, days: float | None, max_rows: int | None) -> None:
        self.blobs = blobs
        self.days = days
        self.max_rows = max_rows

    def __call__(self, store: Store) -> None:
        paths: list[str] = []
        if self.days is not None:
            cutoff = iso(time.time() - self.days * 86_400)
            assert cutoff is not None
            removed = store.purge_before(cutoff)
            log.info("retention: purged requests before %s (%d files)", cutoff, len(removed))
            paths.extend(removed)
        if self.max_rows is not None:
            keep_newest: Callable[[int], list[str]] | None = getattr(
                store, "purge_keep_newest", None
            )
            if keep_newest is None:
                log.warning("retention: %s stores cannot keep only the newest rows", store.dialect)
            else:
                removed = keep_newest(self.max_rows)
                log.info(
                    "retention: kept the newest %d requests (%d files purged)",
                    self.max_rows,
                    len(removed),
                )
                paths.extend(removed)
        self._remove_files(paths)

    def _remove_files(self, paths: list[str]) -> None:
        failed = 0
        for path in paths:
            try:
                self.blobs.remove(path)
            except OSError:
                failed += 1
                log.warning("retention: could not delete %s", path, exc_info=True)
        if paths:
            log.info("retention: deleted %d of %d files", len(paths) - failed, len(paths))
