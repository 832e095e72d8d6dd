"""`llm_judge`: asks a model, through a provider of the gateway's own table, for a verdict.

The prompt template gets `{text}` (and `{stage}`); the model must answer with PASS or
BLOCK as its first word, optionally followed by a reason. Any other answer is an error
(handled by `on_error`). The provider's upstream URL is called directly with its key (or
the entry's `api_key`), in the API shape of the provider's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simple_gateway.guardrails.base import Options, Subject, Verdict, action_of
from simple_gateway.guardrails.builtin._providers import provider_and_key

DEFAULT_PROMPT = (
    "You are a content policy checker. Decide whether the following {stage} text may pass.\n"
    "Answer with PASS or BLOCK as the first word, then a short reason.\n\n"
    "Text:\n<<<\n{text}\n>>>"
)
MAX_TOKENS = 64

Call = Callable[["LLMJudge", str], tuple[str, dict[str, Any], dict[str, str]]]


def _openai_call(judge: LLMJudge, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    body = {
        "model": judge.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    return "/v1/chat/completions", body, {"Authorization": f"Bearer {judge.key}"}


def _anthropic_call(judge: LLMJudge, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    body = {
        "model": judge.model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
    }
    headers = {"x-api-key": judge.key, "anthropic-version": "2023-06-01"}
    return "/v1/messages", body, headers


def _openai_text(answer: Any) -> str:
    return str(answer["choices"][0]["message"]["content"] or "")


def _anthropic_text(answer: Any) -> str:
    return "".join(b.get("text", "") for b in answer["content"] if b.get("type") == "text")


# The API shape to use per provider type; types not listed speak OpenAI's.
SHAPES: dict[str, tuple[Call, Callable[[Any], str]]] = {
    "openai": (_openai_call, _openai_text),
    "anthropic": (_anthropic_call, _anthropic_text),
}


class LLMJudge:
    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        action_of(options, ("block",))
        provider, self.key = provider_and_key(options, "openai")
        self.base_url = provider.base_url
        self.model = str(options.require("model"))
        self.prompt = str(options.get("prompt") or DEFAULT_PROMPT)
        if "{text}" not in self.prompt:
            raise ValueError("'prompt' must contain {text}")
        self._call, self._text = SHAPES.get(provider.type, SHAPES["openai"])
        self.timeout = options.timeout
        self.http = options.services.http

    def __repr__(self) -> str:  # never show the key
        return f"LLMJudge(name={self.name!r}, model={self.model!r})"

    def check(self, subject: Subject) -> Verdict:
        prompt = self.prompt.replace("{stage}", str(subject.stage)).replace("{text}", subject.text)
        path, body, headers = self._call(self, prompt)
        answer = self.http.post_json(self.base_url + path, body, self.timeout, headers)
        try:
            text = self._text(answer).strip()
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ValueError("the judge's reply has no text") from None
        word, _, rest = text.partition(" ")
        verdict = word.strip(".:,!").upper()
        if verdict == "PASS":
            return Verdict.passed()
        if verdict == "BLOCK":
            return Verdict.blocked(rest.strip()[:300] or "the judge said BLOCK")
        raise ValueError("the judge answered neither PASS nor BLOCK")
