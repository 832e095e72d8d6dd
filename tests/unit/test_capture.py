"""BodyTap on a failing disk: the partial file goes, the record says why, the log stays short."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.logthrottle import ThrottledLog
from simple_gateway.proxy.capture import BodyTap
from simple_gateway.records.blobs import BlobSink, BlobStore


class FullFile:
    """A file on a disk with `room` bytes left; closing fails when asked to."""

    def __init__(self, real: Any, room: int, fail_close: bool = False) -> None:
        self.real = real
        self.room = room
        self.fail_close = fail_close

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.real.write(data[: self.room])  # a partial write, as on a real full disk
            self.room = 0
            raise OSError(28, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.real.close()
        if self.fail_close:
            raise OSError(28, "No space left on device")


class FullDisk(BlobStore):
    """A BlobStore whose files fill up after `room` bytes."""

    def __init__(self, root: Path, room: int, fail_close: bool = False) -> None:
        super().__init__(root)
        self.room = room
        self.fail_close = fail_close

    def open(self, *args: Any, **kwargs: Any) -> BlobSink:
        sink = super().open(*args, **kwargs)
        sink._file = FullFile(sink._file, self.room, self.fail_close)  # type: ignore[assignment]
        return sink


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def tap_of(blobs: BlobStore, content_type: str = "application/octet-stream") -> BodyTap:
    return BodyTap(blobs, 1024, "01REC", "openai", "response", content_type)


def test_a_write_error_deletes_the_partial_file_and_says_why(tmp_path: Path) -> None:
    tap = tap_of(FullDisk(tmp_path, room=100_000))
    for _ in range(10):
        tap.write(b"x" * 65536)
    capture = tap.finish()
    assert capture.file is None
    assert capture.size == 655_360  # the exchange itself went on
    assert capture.missing == "response body not kept on disk: No space left on device"
    assert files_in(tmp_path) == []


def test_a_text_body_outgrowing_the_inline_limit_on_a_full_disk(tmp_path: Path) -> None:
    tap = tap_of(FullDisk(tmp_path, room=10), content_type="application/json")
    tap.write(b"{" + b" " * 1000)
    tap.write(b" " * 1000 + b"}")
    capture = tap.finish()
    assert capture.file is None and capture.missing
    assert capture.inline  # the preview kept in memory is still recorded
    assert files_in(tmp_path) == []


def test_a_failing_close_deletes_the_file(tmp_path: Path) -> None:
    tap = tap_of(FullDisk(tmp_path, room=10**9, fail_close=True))
    tap.write(b"x" * 5000)
    capture = tap.finish()
    assert capture.file is None and capture.missing
    assert files_in(tmp_path) == []


def test_an_unwritable_folder_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "files"
    blocker.write_text("a file where the folder should be")
    tap = tap_of(BlobStore(blocker))
    tap.write(b"x" * 5000)
    capture = tap.finish()
    assert capture.file is None and capture.missing
    assert files_in(tmp_path) == [blocker]


def test_discard_deletes_what_was_written(tmp_path: Path) -> None:
    tap = tap_of(BlobStore(tmp_path))
    tap.write(b"x" * 5000)
    assert files_in(tmp_path)
    tap.discard("request body over MAX_REQUEST_BODY_MB: not kept")
    tap.write(b"x" * 5000)
    capture = tap.finish()
    assert capture.file is None
    assert capture.missing == "request body over MAX_REQUEST_BODY_MB: not kept"
    assert files_in(tmp_path) == []


def test_repeated_errors_are_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="test.throttle"):
        for _ in range(1000):
            throttled.error("OSError:28", "disk full for %s", "a body")
        throttled.error("OSError:13", "permission denied")
        now[0] = 61.0
        throttled.error("OSError:28", "disk full for %s", "a body")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "disk full for a body",
        "permission denied",
        "disk full for a body (and 999 more like this in the last 61s)",
    ]
