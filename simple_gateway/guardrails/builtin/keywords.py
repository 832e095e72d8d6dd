"""`keywords`: whole words or phrases, case-insensitive; block, redact or replace."""

from __future__ import annotations

import re

from simple_gateway.guardrails.base import Options
from simple_gateway.guardrails.builtin._pattern import PatternCheck


class Keywords(PatternCheck):
    def __init__(self, options: Options) -> None:
        words = [w for w in options.string_list("words", required=True) if w.strip()]
        if not words:
            raise ValueError("'words' must list at least one word")
        alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        super().__init__(options, pattern, "a listed word")
