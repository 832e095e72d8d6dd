"""`secrets`: well-known API key and token formats, and private-key blocks.

Block (the default) or redact each one with `<SECRET>`. The reason names the kind found,
never the value.
"""

from __future__ import annotations

import re

from simple_gateway.guardrails.base import Options, Outcome, Subject, Verdict, action_of

# kind -> (literals one of which every match contains, pattern). The literals are looked
# for first: a substring search is far cheaper than a regex scan, and most text has none.
PATTERNS: dict[str, tuple[tuple[str, ...], re.Pattern[str]]] = {
    "private key": (("PRIVATE KEY",), re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    )),
    "Anthropic API key": (("sk-ant-",), re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    "OpenAI API key": (("sk-",), re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    "AWS access key id": (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    "GitHub token": (("gh", "github_pat_"), re.compile(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"
    )),
    "GitLab token": (("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    "Slack token": (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    "Google API key": (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    "Stripe key": (("_live_", "_test_"), re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}")),
    "Hugging Face token": (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    "JSON Web Token": (("eyJ",), re.compile(
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    )),
}  # fmt: skip
PLACEHOLDER = "<SECRET>"


class Secrets:
    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        self.action = action_of(options, ("block", "redact"))

    def check(self, subject: Subject) -> Verdict:
        found: list[str] = []
        parts = []
        for part in subject.parts:
            for kind, (literals, pattern) in PATTERNS.items():
                if not any(literal in part for literal in literals):
                    continue
                part, count = pattern.subn(PLACEHOLDER, part)
                if count:
                    found.append(kind)
            parts.append(part)
        if not found:
            return Verdict.passed()
        reason = "found " + ", ".join(sorted(set(found)))
        if self.action == "block":
            return Verdict.blocked(reason)
        return Verdict(Outcome.REDACT, reason, parts=tuple(parts))
