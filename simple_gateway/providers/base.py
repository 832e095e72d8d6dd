"""The Provider protocol, the registry of provider types, and longest-prefix routing.

A provider type (openai, anthropic, compatible, ...) is registered once by name; each
configured provider is an instance of a type with its own name and base URL. A request
path is routed like requests picks an adapter: the longest matching prefix wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from simple_gateway.settings import ProviderConfig


class Provider(Protocol):
    """One upstream service the gateway forwards to."""

    @property
    def name(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def prefix(self) -> str:
        """The path prefix that selects it, e.g. "/openai"."""
        ...

    def upstream_url(self, path: str) -> str:
        """The full upstream URL for a path (with its query) below the prefix."""
        ...


ProviderFactory = Callable[[ProviderConfig], Provider]
_TYPES: dict[str, ProviderFactory] = {}


def register_provider_type(type_name: str, factory: ProviderFactory) -> None:
    """Make a provider type available to configuration (`providers.<name>.type`)."""
    _TYPES[type_name] = factory


def provider_types() -> list[str]:
    return sorted(_TYPES)


def build_provider(config: ProviderConfig) -> Provider:
    try:
        factory = _TYPES[config.type]
    except KeyError:
        raise ValueError(
            f"providers.{config.name}.type: unknown type '{config.type}' "
            f"(known: {', '.join(provider_types())})"
        ) from None
    return factory(config)


@dataclass(frozen=True)
class Route:
    provider: Provider
    upstream_path: str  # path and query, as sent upstream


class Router:
    """Maps a request path to a provider by the longest matching prefix."""

    def __init__(self, providers: Iterable[Provider], default: Provider) -> None:
        self.providers = {p.name: p for p in providers}
        # The bare OpenAI-style prefix goes to the default provider with the path unchanged.
        self._prefixes: list[tuple[str, Provider, bool]] = [("/v1", default, True)]
        self._prefixes += [(p.prefix, p, False) for p in self.providers.values()]
        self._prefixes.sort(key=lambda entry: len(entry[0]), reverse=True)

    def route(self, path: str, query: str = "") -> Route | None:
        for prefix, provider, keep_prefix in self._prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                rest = path if keep_prefix else path[len(prefix) :] or "/"
                return Route(provider, rest + ("?" + query if query else ""))
        return None
