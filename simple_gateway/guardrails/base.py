"""The Guardrail protocol and the values it works on: the subject checked and the verdict.

A guardrail sees a `Subject`: the checkable text of one request or reply, as a list of
parts (one per message, content part, prompt or reply choice) so that a redaction can be
put back where each piece came from. It answers a `Verdict`. What the verdict leads to
(enforced or only recorded, refused with which status, after which timeout) is the
pipeline's business, configured per entry, never the guardrail's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from simple_gateway.settings import ProviderConfig


class Stage(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Outcome(StrEnum):
    """What a run of a guardrail came to, as recorded in `guardrail_runs.verdict`."""

    PASS = "pass"
    BLOCK = "block"
    REDACT = "redact"
    REPLACE = "replace"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


MODIFYING = frozenset({Outcome.REDACT, Outcome.REPLACE})


@dataclass(frozen=True)
class Subject:
    """What one stage checks: the text parts of a body and where the exchange is going."""

    parts: tuple[str, ...]
    stage: Stage
    request_id: str = ""
    provider: str = ""
    model: str | None = None
    path: str = ""

    @property
    def text(self) -> str:
        """The parts as one text, blank-line separated."""
        return "\n\n".join(self.parts)

    def with_parts(self, parts: Iterable[str]) -> Subject:
        return Subject(
            tuple(parts), self.stage, self.request_id, self.provider, self.model, self.path
        )


@dataclass(frozen=True)
class Verdict:
    """A guardrail's answer; `parts` holds the new text when the outcome modifies it."""

    outcome: Outcome
    reason: str | None = None
    score: float | None = None
    parts: tuple[str, ...] | None = None

    @classmethod
    def passed(cls, score: float | None = None) -> Verdict:
        return cls(Outcome.PASS, score=score)

    @classmethod
    def blocked(cls, reason: str, score: float | None = None) -> Verdict:
        return cls(Outcome.BLOCK, reason, score)


class Guardrail(Protocol):
    """One configured check. `check` may block its thread (network calls); it may raise.

    A guardrail may also say `blocking = False`: it does no I/O and returns quickly (a
    regex, a size). A group made only of such checks runs in the request thread, one after
    the other: under the interpreter lock threads would not run them any faster, and
    handing them to a pool would cost more than the checks. Anything else, and every class
    that does not say so, runs in the priority's thread pool.
    """

    name: str
    stage: Stage
    priority: int

    def check(self, subject: Subject) -> Verdict: ...


class Options:
    """The keys of one configuration entry, read by a guardrail type's factory.

    Every key a factory reads is marked as used; after the factory returns, a key nobody
    read is a typo and stops the start with the entry's name.
    """

    def __init__(
        self, where: str, name: str, stage: Stage, priority: int, action: str | None,
        values: Mapping[str, Any], services: Services, timeout: float = 5.0,
    ) -> None:  # fmt: skip
        self.where = where
        self.timeout = timeout
        self.name = name
        self.stage = stage
        self.priority = priority
        self.action = action
        self.services = services
        self._values = dict(values)
        self._used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self._used.add(key)
        return self._values.get(key, default)

    def require(self, key: str) -> Any:
        self._used.add(key)
        value = self._values.get(key)
        if value is None or value == "":
            raise ValueError(f"'{key}' is required")
        return value

    def string_list(self, key: str, required: bool = False) -> list[str]:
        value = self.require(key) if required else self.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise ValueError(f"'{key}' must be a list of strings")
        return [str(v) for v in value]

    def unused(self) -> list[str]:
        return sorted(set(self._values) - self._used)


@dataclass
class Services:
    """What guardrail types may use besides their options: outbound HTTP, the providers."""

    http: Any  # simple_gateway.guardrails.http.OutboundHTTP
    # the gateway's providers by name; the judge and moderation call them directly
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)


def action_of(options: Options, allowed: Iterable[str], default: str = "block") -> str:
    """The entry's action, checked against what its type supports."""
    allowed = tuple(allowed)
    action = options.action or default
    if action not in allowed:
        raise ValueError(f"action '{action}' is not supported (use {' or '.join(allowed)})")
    return action


def map_parts(subject: Subject, change: Callable[[str], str]) -> tuple[str, ...] | None:
    """Each part changed by `change`; None when nothing changed."""
    parts = tuple(change(part) for part in subject.parts)
    return None if parts == subject.parts else parts
