"""The built-in provider types: HTTP services reached at a base URL.

They differ today only in their defaults; the types exist so that key injection,
translation and usage rules can attach to a type without touching the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from simple_gateway.providers.base import register_provider_type
from simple_gateway.settings import ProviderConfig


@dataclass(frozen=True)
class HTTPProvider:
    """A provider reached by joining its base URL and the request path."""

    # YAML keys this type reads beyond providers.base.COMMON_OPTIONS.
    OPTIONS: ClassVar[frozenset[str]] = frozenset()

    name: str
    base_url: str
    prefix: str

    @classmethod
    def from_config(cls, config: ProviderConfig) -> HTTPProvider:
        prefix = str(config.options.get("prefix") or f"/{config.name}").rstrip("/")
        return cls(config.name, config.base_url, prefix)

    def upstream_url(self, path: str) -> str:
        return self.base_url + path


class OpenAIProvider(HTTPProvider):
    """api.openai.com and its Bearer-key scheme."""


class AnthropicProvider(HTTPProvider):
    """api.anthropic.com: keys travel in `x-api-key`."""


class GeminiProvider(HTTPProvider):
    """generativelanguage.googleapis.com: keys travel in `x-goog-api-key`."""


class CompatibleProvider(HTTPProvider):
    """Any OpenAI-compatible server (Ollama, vLLM, LM Studio, ...)."""


def register_builtin_types() -> None:
    for type_name, cls in (
        ("openai", OpenAIProvider),
        ("anthropic", AnthropicProvider),
        ("gemini", GeminiProvider),
        ("compatible", CompatibleProvider),
    ):
        register_provider_type(type_name, cls.from_config, cls.OPTIONS)
