"""`keywords`: whole words or phrases, case-insensitive; block, redact or replace."""

from __future__ import annotations

import re

from simple_gateway.guardrails.base import Options, Subject, Verdict
from simple_gateway.guardrails.builtin._pattern import PatternCheck


class Keywords(PatternCheck):
    def __init__(self, options: Options) -> None:
        words = [w for w in options.string_list("words", required=True) if w.strip()]
        if not words:
            raise ValueError("'words' must list at least one word")
        alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        super().__init__(options, pattern, "a listed word")
        self.folded = tuple({w.strip().casefold() for w in words})

    def check(self, subject: Subject) -> Verdict:
        # A substring search per word rules most text out far faster than the pattern.
        texts = [part.casefold() for part in subject.parts]
        if not any(word in text for text in texts for word in self.folded):
            return Verdict.passed()
        return super().check(subject)
