"""The admin token and session secret files: one value for every process, owner-only."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from simple_gateway.dashboard.auth import LoginThrottle, SessionStore, shared_secret_file

PROCESSES = 8


def _race(path: str, barrier: multiprocessing.synchronize.Barrier, results: object) -> None:
    barrier.wait()
    results.put(shared_secret_file(Path(path)))  # type: ignore[attr-defined]


def test_processes_starting_at_once_share_one_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    path = tmp_path / "data" / "dashboard-token"
    workers = [
        context.Process(target=_race, args=(str(path), barrier, results)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    values = {value for value, _ in outcomes}
    assert values == {path.read_text().strip()}
    assert sum(created for _, created in outcomes) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["dashboard-token"]  # no temporary left


def test_failed_logins_wait_longer_each_time_up_to_a_bound() -> None:
    throttle = LoginThrottle()
    delays = [throttle.failed("10.0.0.1") for _ in range(6)]
    assert delays == sorted(delays) and delays[0] < delays[3]
    assert max(delays) <= 8.0
    assert throttle.failed("10.0.0.2") == delays[0]  # per address
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1") == delays[0]


def test_a_session_ends_for_every_copy_of_its_cookie(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    session, cookie = store.create()
    other = SessionStore(tmp_path)  # another worker: same folder, same secret
    assert other.load(cookie) == session
    other.end(session)
    assert store.load(cookie) is None
    assert store.load(cookie[:-2] + "xx") is None
    assert store.load("") is None
