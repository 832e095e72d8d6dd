"""`model_allowlist`: only the listed models (glob patterns) may be asked; others blocked."""

from __future__ import annotations

import fnmatch

from simple_gateway.guardrails.base import Options, Subject, Verdict, action_of


class ModelAllowlist:
    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        action_of(options, ("block",))
        self.models = options.string_list("models", required=True)

    def check(self, subject: Subject) -> Verdict:
        model = subject.model
        if model is None:
            return Verdict.blocked("the request names no model")
        if any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models):
            return Verdict.passed()
        return Verdict.blocked(f"model '{model}' is not allowed")
