"""`openai_moderation`: the moderation endpoint of the configured OpenAI provider.

Blocks when the model flags one of `categories` (all categories when none are listed),
or, with `threshold`, when the score of one of them reaches it. The reason names the
categories, never the text; the key is sent in the Authorization header only.
"""

from __future__ import annotations

from typing import Any

from simple_gateway.guardrails.base import Options, Subject, Verdict, action_of
from simple_gateway.guardrails.builtin._providers import provider_and_key

DEFAULT_MODEL = "omni-moderation-latest"


class OpenAIModeration:
    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        action_of(options, ("block",))
        provider, key = provider_and_key(options, "openai")
        self.url = provider.base_url + str(options.get("path") or "/v1/moderations")
        self._headers = {"Authorization": f"Bearer {key}"}
        self.model = str(options.get("model") or DEFAULT_MODEL)
        self.categories = options.string_list("categories")
        threshold = options.get("threshold")
        if threshold is not None and (
            not isinstance(threshold, int | float) or not 0 <= threshold <= 1
        ):
            raise ValueError("'threshold' must be a number between 0 and 1")
        self.threshold = None if threshold is None else float(threshold)
        self.timeout = options.timeout
        self.http = options.services.http

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIModeration(name={self.name!r}, url={self.url!r})"

    def check(self, subject: Subject) -> Verdict:
        text = subject.text
        if not text.strip():
            return Verdict.passed()
        payload = {"model": self.model, "input": text}
        answer = self.http.post_json(self.url, payload, self.timeout, self._headers)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or not results:
            raise ValueError("the moderation endpoint answered without results")
        hits: dict[str, float] = {}
        for result in results:
            hits.update(self._hits(result))
        if not hits:
            top = max((self._scores(r) for r in results), key=lambda s: max(s.values(), default=0))
            return Verdict.passed(max(top.values(), default=None))
        names = ", ".join(sorted(hits))
        return Verdict.blocked(f"flagged for {names}", max(hits.values()))

    def _scores(self, result: Any) -> dict[str, float]:
        scores = result.get("category_scores") if isinstance(result, dict) else None
        if not isinstance(scores, dict):
            return {}
        wanted = self.categories or list(scores)
        return {c: float(scores[c]) for c in wanted if isinstance(scores.get(c), int | float)}

    def _hits(self, result: Any) -> dict[str, float]:
        scores = self._scores(result)
        if self.threshold is not None:
            return {c: s for c, s in scores.items() if s >= self.threshold}
        flags = result.get("categories") if isinstance(result, dict) else None
        if not isinstance(flags, dict):
            return {}
        wanted = self.categories or list(flags)
        return {c: scores.get(c, 1.0) for c in wanted if flags.get(c) is True}
