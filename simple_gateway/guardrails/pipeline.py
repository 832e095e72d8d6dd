"""Runs one stage: priority groups in ascending order, the guardrails of a group at once.

design: each priority level has its own bounded ThreadPoolExecutor, created in the worker
after the fork (`Executors.start`) and shut down on stop. A group's checks are submitted
together; the calling request thread waits for them with `wait(FIRST_COMPLETED)` up to the
nearest per-guardrail deadline. The first enforced failure (a block, or an error or timeout
of an `on_error: block` entry) ends the stage at once: the siblings still running are
recorded as `cancelled` and not awaited (a thread that cannot be interrupted finishes in the
pool, unobserved). Modifications (redact, replace) of a group are applied in configuration
order; when two touch the same part, the later one is run again on the earlier one's output,
so no redaction is ever lost. The result of a group feeds the next one.

A group made only of local checks (`blocking = False`: regex, keywords, pii, ...) runs in
the request thread instead, one check after the other in configuration order: under the
interpreter lock a pool would not run them faster, and its two thread hand-offs per request
cost more than the checks under load. The first failure still ends the stage (the checks
not yet run are recorded as `cancelled`), and one that overran its timeout counts as a
timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import groupby

from simple_gateway.guardrails.base import MODIFYING, Outcome, Subject, Verdict
from simple_gateway.guardrails.config import Entry
from simple_gateway.ids import new_id
from simple_gateway.records.model import GuardrailRun

log = logging.getLogger(__name__)

_MAX_ERROR = 500
_STREAM = -(2**63)  # the key of the stream checks' pool, no priority anyone configures
RunObserver = Callable[[GuardrailRun], None]


class Executors:
    """One bounded thread pool per priority level; started in the worker."""

    def __init__(self, priorities: Sequence[int], workers: int) -> None:
        self._priorities = list(priorities)
        self._workers = workers
        self._pools: dict[int, ThreadPoolExecutor] = {}

    def start(self) -> None:
        if _STREAM not in self._pools:
            self._pools[_STREAM] = ThreadPoolExecutor(
                self._workers, thread_name_prefix="guardrails-stream"
            )
        for priority in self._priorities:
            if priority not in self._pools:
                self._pools[priority] = ThreadPoolExecutor(
                    self._workers, thread_name_prefix=f"guardrails-p{priority}"
                )

    def stream_pool(self) -> ThreadPoolExecutor:
        """Where a stream's checks run, beside the relay (they use the priority pools)."""
        pool = self._pools.get(_STREAM)
        if pool is None:
            self.start()
            pool = self._pools[_STREAM]
        return pool

    def stop(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def pool(self, priority: int) -> ThreadPoolExecutor:
        pool = self._pools.get(priority)
        if pool is None:  # a server that never ran the worker hooks: start on first use
            self.start()
            pool = self._pools[priority]
        return pool


@dataclass
class StageResult:
    parts: tuple[str, ...]
    runs: list[GuardrailRun] = field(default_factory=list)
    stopped_by: Entry | None = None  # the entry whose failure ended the stage
    outcome: Outcome = Outcome.PASS  # the stopping run's verdict (block, error, timeout, ...)
    reason: str | None = None
    modified: bool = False
    modified_by: Entry | None = None  # the first entry whose change was applied

    @property
    def blocked(self) -> bool:
        return self.stopped_by is not None and self.outcome not in (
            Outcome.ERROR,
            Outcome.TIMEOUT,
        )

    @property
    def unavailable(self) -> bool:
        return self.stopped_by is not None and not self.blocked


@dataclass
class _Done:
    entry: Entry
    started_at: float
    duration: float
    verdict: Verdict | None = None
    error: BaseException | None = None


class Pipeline:
    """The entries of one stage, grouped by priority."""

    def __init__(
        self, entries: Sequence[Entry], executors: Executors, observer: RunObserver | None = None
    ) -> None:
        self.entries = list(entries)
        self._executors = executors
        self._observer = observer

    def run(self, subject: Subject, entries: Sequence[Entry] | None = None) -> StageResult:
        """Run `entries` (by default all of this stage's) on `subject`."""
        chosen = sorted(self.entries if entries is None else entries, key=lambda e: e.priority)
        result = StageResult(subject.parts)
        for priority, group in groupby(chosen, key=lambda e: e.priority):
            self._run_group(priority, list(group), subject.with_parts(result.parts), result)
            if result.stopped_by is not None:
                break
        if result.modified:
            # A redaction's own output still holds what its siblings and later groups
            # redacted; only the stage's final text may be stored.
            final = "\n\n".join(result.parts)
            for run in result.runs:
                if run.verdict == Outcome.REDACT and run.enforced:
                    run.override_text = final
        for run in result.runs:
            self._observe(run)
        return result

    def _run_group(
        self, priority: int, group: list[Entry], subject: Subject, result: StageResult
    ) -> None:
        if not any(getattr(entry.guardrail, "blocking", True) for entry in group):
            self._run_inline(group, subject, result)
            return
        pool = self._executors.pool(priority)
        started = time.monotonic()
        futures: dict[Future[_Done], Entry] = {
            pool.submit(_call, entry, subject): entry for entry in group
        }
        deadlines = {future: started + entry.timeout for future, entry in futures.items()}
        finished: dict[str, _Done] = {}
        pending = set(futures)
        while pending and result.stopped_by is None:
            wait_for = min(deadlines[f] for f in pending) - time.monotonic()
            done, pending = wait(pending, timeout=max(wait_for, 0.0), return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                finished[outcome.entry.name] = outcome
                self._settle(outcome, subject, result)
            now = time.monotonic()
            late = {f for f in pending if deadlines[f] <= now}
            for future in late:
                future.cancel()
                entry = futures[future]
                self._timed_out(entry, subject, started, now, result)
            pending -= late
        for future in pending:  # the stage already failed: not awaited
            future.cancel()
            entry = futures[future]
            result.runs.append(_run(entry, Outcome.CANCELLED, started, time.monotonic() - started))
        if result.stopped_by is None:
            self._apply_changes(group, finished, subject, result)

    def _run_inline(self, group: list[Entry], subject: Subject, result: StageResult) -> None:
        """Quick local checks, one after the other in this thread; a late one is a timeout."""
        finished: dict[str, _Done] = {}
        for index, entry in enumerate(group):
            done = _call(entry, subject)
            if done.duration > entry.timeout:
                now = time.monotonic()
                self._timed_out(entry, subject, now - done.duration, now, result)
            else:
                finished[entry.name] = done
                self._settle(done, subject, result)
            if result.stopped_by is not None:
                now = time.time()
                for rest in group[index + 1 :]:  # not started: the stage already failed
                    result.runs.append(_run(rest, Outcome.CANCELLED, now, 0.0))
                return
        self._apply_changes(group, finished, subject, result)

    def _settle(self, done: _Done, subject: Subject, result: StageResult) -> None:
        entry = done.entry
        if done.error is not None:
            self._failed(entry, Outcome.ERROR, _describe(done.error), done, subject, result)
            return
        verdict = done.verdict
        assert verdict is not None
        problem = _invalid(verdict, subject)
        if problem is not None:
            self._failed(entry, Outcome.ERROR, problem, done, subject, result)
            return
        run = _run(entry, verdict.outcome, done.started_at, done.duration)
        run.reason, run.score = verdict.reason, verdict.score
        if verdict.outcome == Outcome.BLOCK:
            run.original_text = subject.text if subject.stage == "output" else None
        elif verdict.outcome in MODIFYING and verdict.parts is not None:
            run.override_text = "\n\n".join(verdict.parts)
            if verdict.outcome == Outcome.REPLACE:
                run.original_text = subject.text
        result.runs.append(run)
        if verdict.outcome == Outcome.BLOCK and entry.enforced:
            self._stop(result, entry, Outcome.BLOCK, verdict.reason)

    def _failed(
        self,
        entry: Entry,
        outcome: Outcome,
        error: str,
        done: _Done,
        subject: Subject,
        result: StageResult,
    ) -> None:
        log.warning("guardrail %s (%s) failed: %s", entry.name, subject.stage, error)
        run = _run(entry, outcome, done.started_at, done.duration)
        run.error = error
        result.runs.append(run)
        if entry.enforced and entry.on_error == "block":
            self._stop(result, entry, outcome, f"guardrail '{entry.name}' is unavailable: {error}")

    def _timed_out(
        self, entry: Entry, subject: Subject, started: float, now: float, result: StageResult
    ) -> None:
        message = f"no verdict within {entry.timeout:g}s"
        done = _Done(entry, time.time() - (now - started), now - started)
        self._failed(entry, Outcome.TIMEOUT, message, done, subject, result)

    @staticmethod
    def _stop(result: StageResult, entry: Entry, outcome: Outcome, reason: str | None) -> None:
        result.stopped_by = entry
        result.outcome = outcome
        result.reason = reason

    def _apply_changes(
        self, group: list[Entry], finished: dict[str, _Done], subject: Subject, result: StageResult
    ) -> None:
        parts = list(subject.parts)
        touched: set[int] = set()
        for entry in group:
            done = finished.get(entry.name)
            verdict = done.verdict if done is not None else None
            if verdict is None or verdict.outcome not in MODIFYING or not entry.enforced:
                continue
            assert verdict.parts is not None
            changed = {
                i
                for i, (a, b) in enumerate(zip(subject.parts, verdict.parts, strict=True))
                if a != b
            }
            if changed & touched:
                verdict = self._rerun(entry, subject.with_parts(parts), result)
                if verdict is None:
                    return
                assert verdict.parts is not None
                changed = {
                    i for i, (a, b) in enumerate(zip(parts, verdict.parts, strict=True)) if a != b
                }
            new_parts = verdict.parts
            assert new_parts is not None
            for index in changed:
                parts[index] = new_parts[index]
            if changed and result.modified_by is None:
                result.modified_by = entry
            touched |= changed
        if touched:
            result.parts = tuple(parts)
            result.modified = True

    def _rerun(self, entry: Entry, subject: Subject, result: StageResult) -> Verdict | None:
        """Run a modifying entry again on a sibling's output; None if that failed the stage."""
        try:
            if getattr(entry.guardrail, "blocking", True):
                future = self._executors.pool(entry.priority).submit(_call, entry, subject)
                done = future.result(timeout=entry.timeout)
            else:
                done = _call(entry, subject)
        except TimeoutError:
            now = time.monotonic()
            self._timed_out(entry, subject, now - entry.timeout, now, result)
            return None if result.stopped_by else Verdict.passed()
        before = len(result.runs)
        self._settle(done, subject, result)
        verdict = done.verdict
        if result.stopped_by is not None or len(result.runs) == before:
            return None
        if verdict is None or verdict.parts is None or verdict.outcome not in MODIFYING:
            return Verdict(Outcome.REDACT, parts=subject.parts)
        return verdict

    def _observe(self, run: GuardrailRun) -> None:
        if self._observer is None:
            return
        try:
            self._observer(run)
        except Exception:
            log.exception("guardrail run observer failed")


def _call(entry: Entry, subject: Subject) -> _Done:
    started_at = time.time()
    start = time.perf_counter()
    try:
        verdict = entry.guardrail.check(subject)
    except Exception as exc:
        return _Done(entry, started_at, time.perf_counter() - start, error=exc)
    return _Done(entry, started_at, time.perf_counter() - start, verdict=verdict)


def _invalid(verdict: Verdict, subject: Subject) -> str | None:
    if not isinstance(verdict, Verdict):
        return f"check returned {type(verdict).__name__}, not a Verdict"
    if verdict.outcome in MODIFYING:
        if verdict.parts is None or len(verdict.parts) != len(subject.parts):
            return f"a {verdict.outcome} verdict must carry one text per part checked"
    elif verdict.outcome not in (Outcome.PASS, Outcome.BLOCK):
        return f"check returned the verdict {verdict.outcome!r}"
    return None


def _run(entry: Entry, outcome: Outcome, started_at: float, duration: float) -> GuardrailRun:
    return GuardrailRun(
        id=new_id(),
        started_at=started_at,
        guardrail=entry.name,
        type=entry.type,
        stage=str(entry.stage),
        priority=entry.priority,
        verdict=str(outcome),
        enforced=entry.enforced,
        duration_ms=duration * 1000,
    )


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."
