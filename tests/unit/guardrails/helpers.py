"""Building guardrails from YAML-like entries, as the configuration does."""

from __future__ import annotations

from typing import Any

from simple_gateway.guardrails.base import Stage, Subject
from simple_gateway.guardrails.config import GuardrailsConfig, load_config
from simple_gateway.guardrails.service import register_builtin_types
from simple_gateway.settings import ProviderConfig


class FakeHTTP:
    """Stands in for OutboundHTTP: answers from a function, keeps what was posted."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.posts: list[tuple[str, Any, float, dict[str, str] | None]] = []

    def post_json(self, url: str, payload: Any, timeout: float, headers: Any = None) -> Any:
        self.posts.append((url, payload, timeout, headers))
        return self.answer(payload) if callable(self.answer) else self.answer

    def close(self) -> None:
        pass


PROVIDERS = {
    "openai": ProviderConfig("openai", "openai", "http://mock.invalid", {}),
    "anthropic": ProviderConfig("anthropic", "anthropic", "http://claude.invalid", {}),
}


def config(section: dict[str, Any], http: Any = None) -> GuardrailsConfig:
    from simple_gateway.guardrails.base import Services

    register_builtin_types()
    return load_config(section, Services(http=http or FakeHTTP(), providers=PROVIDERS))


def one(entry: dict[str, Any], stage: str = "input", http: Any = None) -> Any:
    built = config({stage: [{"name": "g", **entry}]}, http)
    return (built.input or built.output)[0].guardrail


def subject(*parts: str, stage: Stage = Stage.INPUT, model: str | None = "gpt-4o") -> Subject:
    return Subject(tuple(parts), stage, "req-1", "openai", model, "/v1/chat/completions")
