"""The built-in provider types and the reply shapes they add, registered through the same
door a third-party type would use (`register_provider_type`, `register_body/_stream`)."""

from __future__ import annotations

from simple_gateway.providers.anthropic import AnthropicProvider
from simple_gateway.providers.azure import AzureProvider
from simple_gateway.providers.base import register_provider_type
from simple_gateway.providers.gemini import GeminiChunks, GeminiProvider, GeminiResponse
from simple_gateway.providers.http import (
    HTTP_OPTIONS,
    CompatibleProvider,
    HTTPProvider,
    OpenAIProvider,
)
from simple_gateway.providers.replicate import ReplicatePrediction, ReplicateProvider
from simple_gateway.records.usage import default_registry

_shapes_registered: list[bool] = []


def register_builtin_types() -> None:
    """Register the built-in types (idempotent: the registry is per process)."""
    types: tuple[tuple[str, type[HTTPProvider]], ...] = (
        ("openai", OpenAIProvider),
        ("compatible", CompatibleProvider),
        ("anthropic", AnthropicProvider),
        ("gemini", GeminiProvider),
        ("azure", AzureProvider),
        ("replicate", ReplicateProvider),
    )
    for type_name, cls in types:
        register_provider_type(type_name, cls, HTTP_OPTIONS | cls.OPTIONS)
    if not _shapes_registered:
        registry = default_registry()
        registry.register_body(GeminiResponse())
        registry.register_body(ReplicatePrediction(), first=True)
        registry.register_stream(GeminiChunks())
        _shapes_registered.append(True)
