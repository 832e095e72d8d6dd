"""`regex`: a regular expression (Python syntax); block, redact each match, or replace."""

from __future__ import annotations

import re

from simple_gateway.guardrails.base import Options
from simple_gateway.guardrails.builtin._pattern import PatternCheck


class Regex(PatternCheck):
    def __init__(self, options: Options) -> None:
        source = options.require("pattern")
        try:
            pattern = re.compile(str(source))
        except re.error as exc:
            raise ValueError(f"bad regex {source!r}: {exc}") from None
        super().__init__(options, pattern, "the pattern")
