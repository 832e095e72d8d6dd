"""What keywords and regex share: a compiled pattern, and block, redact or replace."""

from __future__ import annotations

import re

from simple_gateway.guardrails.base import Options, Outcome, Subject, Verdict, action_of

DEFAULT_REDACTION = "[REDACTED]"


class PatternCheck:
    """Blocks on a match, redacts each match with `replacement`, or replaces the whole text."""

    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options, pattern: re.Pattern[str], what: str) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        self.action = action_of(options, ("block", "redact", "replace"))
        replacement = options.get("replacement")
        if self.action == "replace" and not isinstance(replacement, str):
            raise ValueError("'replacement' is required with action: replace")
        if replacement is not None and not isinstance(replacement, str):
            raise ValueError("'replacement' must be a string")
        self.replacement = DEFAULT_REDACTION if replacement is None else replacement
        self.pattern = pattern
        self.what = what

    def check(self, subject: Subject) -> Verdict:
        hits = [i for i, part in enumerate(subject.parts) if self.pattern.search(part)]
        if not hits:
            return Verdict.passed()
        reason = f"{self.what} matched"
        if self.action == "block":
            return Verdict.blocked(reason)
        if self.action == "redact":
            parts = tuple(self.pattern.sub(lambda _m: self.replacement, p) for p in subject.parts)
            return Verdict(Outcome.REDACT, reason, parts=parts)
        parts = tuple(self.replacement if i in hits else p for i, p in enumerate(subject.parts))
        return Verdict(Outcome.REPLACE, reason, parts=parts)
