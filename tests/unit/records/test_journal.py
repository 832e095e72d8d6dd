"""Journal: records kept until settled, replayed from dead workers only, never with secrets."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.journal import Journal, JournaledSink
from simple_gateway.records.model import BodyCapture, Outcome, Record
from simple_gateway.records.scrub import SecretScrubber


def make_record(n: int, **changes: object) -> Record:
    record = Record(
        id=f"rec-{n:04d}",
        request_id=f"req-{n:04d}",
        started_at=1_700_000_000.0 + n,
        provider="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        outcome=Outcome.COMPLETED,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.bin"))


def replay_elsewhere(directory: Path) -> list[Record]:
    replayed: list[Record] = []
    Journal(directory).replay(replayed.append, lambda: True)
    return replayed


def test_settled_records_are_trimmed(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    for n in range(3):
        journal.append(make_record(n))
    (path,) = journal_files(tmp_path)
    assert path.read_bytes()[:4] != b"\0\0\0\0"  # the first record's length
    journal.settled([{"id": "rec-0000"}, {"id": "rec-0001"}])
    assert path.read_bytes()[:4] != b"\0\0\0\0"
    journal.settled([{"id": "rec-0002"}])
    assert path.read_bytes()[:4] == b"\0\0\0\0"  # nothing left to replay
    journal.close()
    assert journal_files(tmp_path) == []


def test_a_live_workers_journal_is_left_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(make_record(1))
    assert replay_elsewhere(tmp_path) == []  # its owner holds the lock
    journal.close()


def test_a_dead_workers_journal_is_replayed_then_removed(tmp_path: Path) -> None:
    script = (
        "import sys, os\n"
        "from pathlib import Path\n"
        "from simple_gateway.records.journal import Journal\n"
        "from tests.unit.records.test_journal import make_record\n"
        "j = Journal(Path(sys.argv[1])); j.open()\n"
        "for n in range(5): j.append(make_record(n))\n"
        "os._exit(0)\n"  # no close(): as if killed
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=Path.cwd())
    replayed = replay_elsewhere(tmp_path)
    assert [r.id for r in replayed] == [f"rec-{n:04d}" for n in range(5)]
    assert replayed[0].outcome == Outcome.COMPLETED and replayed[0].secrets == []
    assert journal_files(tmp_path) == []


def test_a_journal_is_kept_when_the_writer_could_not_settle_its_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(make_record(1))
    journal.close()  # still pending: kept for the next worker
    kept = []
    assert Journal(tmp_path).replay(kept.append, lambda: False) == 0
    assert len(kept) == 1 and journal_files(tmp_path)
    assert len(replay_elsewhere(tmp_path)) == 1
    assert journal_files(tmp_path) == []


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    key = "sk-live-0123456789abcdef"
    record = make_record(
        1,
        secrets=[key],
        request_body=BodyCapture(
            inline=b'{"model": "x", "api_key": "field-secret-0123456789"}',
            content_type="application/json",
        ),
        response_body=BodyCapture(inline=f"echo {key}".encode()),
        request_headers={"x-echo-body": f'{{"message": "bad key {key}"}}'},
        response_headers={"x-echo": key},
        error_message=f"provider said {key}",
    )
    journal = Journal(tmp_path)
    journal.open()
    JournaledSink(journal, type("W", (), {"submit": lambda self, r: None})()).submit(record)
    (path,) = journal_files(tmp_path)
    data = path.read_bytes()
    assert key.encode() not in data and b"field-secret-0123456789" not in data
    assert record.secrets == [key] and key.encode() in record.response_body.inline  # untouched
    journal.close()

    (replayed,) = replay_elsewhere(tmp_path)  # key fields of JSON bodies: redacted on replay
    SecretScrubber(BlobStore(tmp_path / "files"))(replayed)
    assert b"field-secret-0123456789" not in replayed.request_body.inline
    assert key.encode() not in replayed.response_body.inline


def test_a_torn_last_record_and_foreign_pickles_are_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(make_record(1))
    (path,) = journal_files(tmp_path)
    assert journal._current is not None
    end = journal._current.size
    journal.close()
    evil = pickle.dumps(os.system)
    fd = os.open(path, os.O_WRONLY)
    try:  # a foreign pickle, then a frame whose length says more than the file holds
        frames = len(evil).to_bytes(4, "little") + evil
        os.pwrite(fd, frames + (2**31).to_bytes(4, "little") + b"torn", end)
    finally:
        os.close(fd)
    assert [r.id for r in replay_elsewhere(tmp_path)] == ["rec-0001"]
