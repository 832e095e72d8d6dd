"""The built-in provider types and the reply shapes they add, registered through the same
door a third-party type would use (`register_provider_type`, `register_body/_stream`)."""

from __future__ import annotations

from simple_gateway.providers.anthropic import AnthropicProvider
from simple_gateway.providers.azure import AzureProvider
from simple_gateway.providers.base import register_provider_type
from simple_gateway.providers.gemini import GeminiChunks, GeminiProvider, GeminiResponse
from simple_gateway.providers.http import CompatibleProvider, OpenAIProvider
from simple_gateway.providers.replicate import ReplicatePrediction, ReplicateProvider
from simple_gateway.records.usage import default_registry

_shapes_registered: list[bool] = []


def register_builtin_types() -> None:
    """Register the built-in types (idempotent: the registry is per process)."""
    register_provider_type("openai", OpenAIProvider)
    register_provider_type("compatible", CompatibleProvider)
    register_provider_type("anthropic", AnthropicProvider)
    register_provider_type("gemini", GeminiProvider)
    register_provider_type("azure", AzureProvider)
    register_provider_type("replicate", ReplicateProvider)
    if not _shapes_registered:
        registry = default_registry()
        registry.register_body(GeminiResponse())
        registry.register_body(ReplicatePrediction(), first=True)
        registry.register_stream(GeminiChunks())
        _shapes_registered.append(True)
