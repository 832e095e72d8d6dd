"""Retention: purges by age and by count, and deletes the files of purged rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.retention import Retention


class PurgingStore:
    dialect = "fake"

    def __init__(self, by_age: list[str], by_count: list[str]) -> None:
        self.by_age = by_age
        self.by_count = by_count
        self.calls: list[tuple[str, object]] = []

    def purge_before(self, cutoff_iso: str) -> list[str]:
        self.calls.append(("purge_before", cutoff_iso))
        return self.by_age

    def purge_keep_newest(self, max_rows: int) -> list[str]:
        self.calls.append(("purge_keep_newest", max_rows))
        return self.by_count


class AgeOnlyStore:
    dialect = "old"

    def __init__(self) -> None:
        self.cutoffs: list[str] = []

    def purge_before(self, cutoff_iso: str) -> list[str]:
        self.cutoffs.append(cutoff_iso)
        return []


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "files")


def saved(blobs: BlobStore, record_id: str) -> str:
    return blobs.save(b"{}", record_id, "openai", "response", "application/json").path


def test_purges_by_age_and_count_and_deletes_their_files(blobs: BlobStore) -> None:
    old, extra, kept = saved(blobs, "old"), saved(blobs, "extra"), saved(blobs, "kept")
    store = PurgingStore([old], [extra])

    Retention(blobs, days=7, max_rows=1000)(store)  # type: ignore[arg-type]

    (name, cutoff), count = store.calls
    assert name == "purge_before"
    expected = datetime.now(UTC) - timedelta(days=7)
    assert abs(datetime.fromisoformat(str(cutoff)) - expected) < timedelta(minutes=1)
    assert count == ("purge_keep_newest", 1000)
    assert not (blobs.root / old).exists()
    assert not (blobs.root / extra).exists()
    assert (blobs.root / kept).exists()


def test_nothing_happens_without_limits(blobs: BlobStore) -> None:
    store = PurgingStore([], [])
    Retention(blobs, days=None, max_rows=None)(store)  # type: ignore[arg-type]
    assert store.calls == []


def test_a_file_already_gone_is_not_an_error(blobs: BlobStore) -> None:
    store = PurgingStore(["openai/2024-01-01/missing.json"], [])
    Retention(blobs, days=1, max_rows=None)(store)  # type: ignore[arg-type]


def test_a_store_that_cannot_purge_by_count_is_told_so(
    blobs: BlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = AgeOnlyStore()
    with caplog.at_level(logging.WARNING):
        Retention(blobs, days=30, max_rows=10)(store)  # type: ignore[arg-type]
    assert len(store.cutoffs) == 1
    assert "newest" in caplog.text
