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

# Keys every provider entry may have; a type adds its own when it registers.
COMMON_OPTIONS = frozenset({"type", "base_url", "prefix"})


@dataclass(frozen=True)
class ProviderType:
    factory: ProviderFactory
    options: frozenset[str]  # every key a `providers.<name>` entry of this type may hold


_TYPES: dict[str, ProviderType] = {}


def register_provider_type(
    type_name: str, factory: ProviderFactory, options: Iterable[str] = ()
) -> None:
    """Make a provider type available to configuration (`providers.<name>.type`).

    `options` are the YAML keys this type reads beyond COMMON_OPTIONS; any other key in a
    provider's entry is refused at start-up, so a typo never passes silently.
    """
    _TYPES[type_name] = ProviderType(factory, COMMON_OPTIONS | frozenset(options))


def provider_types() -> list[str]:
    return sorted(_TYPES)


def build_provider(config: ProviderConfig) -> Provider:
    """The provider a configuration entry describes; ValueError naming a bad entry."""
    try:
        kind = _TYPES[config.type]
    except KeyError:
        raise ValueError(
            f"providers.{config.name}.type: unknown type '{config.type}' "
            f"(known: {', '.join(provider_types())})"
        ) from None
    unknown = sorted(str(key) for key in config.options if key not in kind.options)
    if unknown:
        raise ValueError(
            f"providers.{config.name}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} for type '{config.type}' "
            f"(known: {', '.join(sorted(kind.options))})"
        )
    if not config.base_url:
        raise ValueError(f"providers.{config.name}.base_url: missing (an http(s) URL)")
    return kind.factory(config)


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
