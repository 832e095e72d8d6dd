"""`max_size`: blocks text longer than `max_chars` characters or `max_tokens` tokens.

Tokens are estimated as one per four characters, the usual rule of thumb for English;
the check needs no tokenizer and no network.
"""

from __future__ import annotations

import math

from simple_gateway.guardrails.base import Options, Subject, Verdict, action_of

CHARS_PER_TOKEN = 4


class MaxSize:
    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        action_of(options, ("block",))
        self.max_chars = _limit(options.get("max_chars"), "max_chars")
        self.max_tokens = _limit(options.get("max_tokens"), "max_tokens")
        if self.max_chars is None and self.max_tokens is None:
            raise ValueError("set 'max_chars' or 'max_tokens'")

    def check(self, subject: Subject) -> Verdict:
        chars = sum(len(p) for p in subject.parts)
        if self.max_chars is not None and chars > self.max_chars:
            return Verdict.blocked(f"{chars} characters, more than {self.max_chars}")
        tokens = math.ceil(chars / CHARS_PER_TOKEN)
        if self.max_tokens is not None and tokens > self.max_tokens:
            return Verdict.blocked(f"about {tokens} tokens, more than {self.max_tokens}")
        return Verdict.passed()


def _limit(value: object, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"'{key}' must be a positive integer")
    return value
