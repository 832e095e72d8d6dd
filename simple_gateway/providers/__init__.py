"""Providers: the protocol, the type registry, the built-in types and routing."""

from simple_gateway.providers.base import (
    Provider,
    Route,
    Router,
    UpstreamRequest,
    build_provider,
    register_provider_type,
)
from simple_gateway.providers.builtin import register_builtin_types

__all__ = [
    "Provider",
    "Route",
    "Router",
    "UpstreamRequest",
    "build_provider",
    "register_builtin_types",
    "register_provider_type",
]
