"""The pipeline: groups in priority order, parallel inside, first failure ends the stage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from simple_gateway.guardrails.base import Outcome, Stage, Subject, Verdict
from simple_gateway.guardrails.config import Entry
from simple_gateway.guardrails.pipeline import Executors, Pipeline
from simple_gateway.guardrails.registry import register_guardrail_type
from tests.unit.guardrails.helpers import config, subject


class Scripted:
    """A guardrail that does what its options say; `gate` holds it until released."""

    gates: dict[str, threading.Event] = {}
    started: dict[str, threading.Event] = {}

    def __init__(self, options: Any) -> None:
        self.name, self.stage, self.priority = options.name, options.stage, options.priority
        self.verdict = options.get("verdict", "pass")
        self.find = options.get("find")
        self.put = options.get("put")
        self.raise_ = options.get("raise")
        Scripted.gates[self.name] = threading.Event()
        Scripted.started[self.name] = threading.Event()
        if not options.get("hold"):
            Scripted.gates[self.name].set()

    def check(self, subject: Subject) -> Verdict:
        Scripted.started[self.name].set()
        Scripted.gates[self.name].wait(10)
        if self.raise_:
            raise RuntimeError(self.raise_)
        if self.verdict == "block":
            return Verdict.blocked(f"{self.name} says no")
        if self.verdict == "redact":
            parts = tuple(p.replace(self.find, self.put) for p in subject.parts)
            return Verdict(Outcome.REDACT, parts=parts)
        return Verdict.passed()


@pytest.fixture
def pipeline() -> Iterator[Any]:
    register_guardrail_type("scripted", Scripted)
    made: list[Executors] = []

    def build(*entries: dict[str, Any]) -> Pipeline:
        built = config({"input": [{"type": "scripted", **e} for e in entries]})
        executors = Executors(built.priorities(), 8)
        made.append(executors)
        return Pipeline(built.input, executors)

    yield build
    for executors in made:
        for gate in Scripted.gates.values():
            gate.set()
        executors.stop()


def verdicts(result: Any) -> dict[str, str]:
    return {run.guardrail: run.verdict for run in result.runs}


def test_a_group_runs_at_once_and_groups_run_in_order(pipeline: Any) -> None:
    # b waits until a has started: they can only both finish if they run at the same time
    run = pipeline(
        {"name": "a", "priority": 0},
        {"name": "b", "priority": 0, "hold": True},
        {"name": "c", "priority": 1},
    )
    threading.Thread(
        target=lambda: (Scripted.started["a"].wait(10), Scripted.gates["b"].set()), daemon=True
    ).start()
    result = run.run(subject("x"))
    assert verdicts(result) == {"a": "pass", "b": "pass", "c": "pass"}
    assert [r.guardrail for r in result.runs][-1] == "c"
    assert result.stopped_by is None


def test_the_first_failure_ends_the_stage_without_waiting(pipeline: Any) -> None:
    run = pipeline(
        {"name": "slow", "hold": True},
        {"name": "no", "verdict": "block"},
        {"name": "later", "priority": 1},
    )
    result = run.run(subject("x"))
    assert result.blocked and result.stopped_by.name == "no"
    assert verdicts(result) == {"no": "block", "slow": "cancelled"}
    assert result.reason == "no says no"


def test_errors_follow_on_error_and_timeouts_are_recorded(pipeline: Any) -> None:
    run = pipeline({"name": "boom", "raise": "kaput", "on_error": "allow"})
    result = run.run(subject("x"))
    assert result.stopped_by is None
    assert result.runs[0].verdict == "error" and "kaput" in result.runs[0].error
    run = pipeline({"name": "stuck", "hold": True, "timeout": "50ms"})
    result = run.run(subject("x"))
    assert result.unavailable and result.runs[0].verdict == "timeout"


def test_monitor_mode_records_but_changes_nothing(pipeline: Any) -> None:
    run = pipeline(
        {"name": "m", "verdict": "block", "mode": "monitor"},
        {"name": "r", "verdict": "redact", "find": "a", "put": "b", "mode": "monitor"},
    )
    result = run.run(subject("aaa"))
    assert result.stopped_by is None and result.parts == ("aaa",) and not result.modified
    assert {(r.guardrail, r.verdict, r.enforced) for r in result.runs} == {
        ("m", "block", False), ("r", "redact", False),
    }  # fmt: skip


def test_redactions_chain_across_groups_and_merge_within_one(pipeline: Any) -> None:
    run = pipeline(
        {"name": "one", "verdict": "redact", "find": "cat", "put": "C"},
        {"name": "two", "verdict": "redact", "find": "dog", "put": "D"},
        {"name": "three", "verdict": "redact", "find": "C D", "put": "both", "priority": 1},
    )
    result = run.run(subject("cat dog", "dog"))
    # one and two changed the same first part: two ran again on one's output
    assert result.parts == ("both", "D")
    assert result.modified
    assert all(r.override_text == "both\n\nD" for r in result.runs if r.verdict == "redact")


def test_a_verdict_of_the_wrong_shape_is_an_error(pipeline: Any) -> None:
    class Bad:
        name, stage, priority = "bad", Stage.INPUT, 0

        def check(self, subject: Subject) -> Verdict:
            return Verdict(Outcome.REDACT, parts=("only one",))

    entry = Entry(Bad(), "bad", timeout=1.0)
    executors = Executors([0], 2)
    try:
        result = Pipeline([entry], executors).run(subject("a", "b"))
    finally:
        executors.stop()
    assert result.unavailable and "one text per part" in result.runs[0].error


def test_a_group_of_local_checks_runs_in_the_calling_thread_and_stops_at_a_failure() -> None:
    built = config(
        {
            "input": [
                {"name": "words", "type": "keywords", "words": ["stop"]},
                {"name": "pii", "type": "pii", "action": "redact"},
                {"name": "later", "type": "secrets", "priority": 1},
            ]
        }
    )
    executors = Executors(built.priorities(), 2)  # never started: nothing may need it
    result = Pipeline(built.input, executors).run(subject("please stop", "a@b.io"))
    assert verdicts(result) == {"words": "block", "pii": "cancelled"}
    result = Pipeline(built.input, executors).run(subject("go", "a@b.io"))
    assert result.parts == ("go", "<EMAIL>")
    assert verdicts(result) == {"words": "pass", "pii": "redact", "later": "pass"}
    assert executors._pools == {}
