"""The Provider protocol, the registry of provider types, and longest-prefix routing.

A provider type (openai, anthropic, gemini, ...) is registered once by name with the
options it accepts; each configured provider is an instance of a type with its own
name, base URL and options. A request path is routed like requests picks an adapter:
the longest matching prefix wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from simple_gateway.errors import GatewayError
from simple_gateway.proxy.transport import Network
from simple_gateway.proxy.upstream import Target
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import Record
from simple_gateway.settings import ProviderConfig


@dataclass
class UpstreamRequest:
    """The request as it will leave for the provider: path (with query) and headers.

    The key gate and the provider type rewrite it (credentials, static headers,
    version defaults) before it is sent.
    """

    path: str
    headers: dict[str, str]
    model: str | None = None  # the model the path names (Gemini), when it names one
    gateway_key: str | None = None  # fingerprint of the gateway key presented
    # Keys the gateway put in (to scrub from anything recorded); never stored.
    secrets: list[str] = field(default_factory=list, repr=False)


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

    @property
    def has_keys(self) -> bool:
        """Whether the gateway holds keys for it (they are never spent without a gateway key)."""
        ...

    def upstream_url(self, path: str) -> str:
        """The full upstream URL for a path (with its query) below the prefix."""
        ...

    def target(self, path: str) -> Target:
        """Where and how to send a request for this path: origin, transport, timeouts."""
        ...

    def pick_key(self) -> str | None:
        """The next of its configured keys (round-robin, by weight); None when it has none."""
        ...

    def credentials(self, request: UpstreamRequest) -> list[str]:
        """The keys a client presented in this provider's places (header, Bearer, query)."""
        ...

    def replace_credentials(self, request: UpstreamRequest, key: str | None) -> None:
        """Remove the client's credentials and put `key` (when given) in their place."""
        ...

    def prepare(self, request: UpstreamRequest) -> None:
        """Apply the provider's static headers, version defaults and path conventions."""
        ...

    def error_body(self, error: GatewayError) -> bytes:
        """The gateway's error in this provider's own error shape."""
        ...

    def finish(
        self, record: Record, submit: Callable[[Record], None], blobs: BlobStore | None
    ) -> None:
        """Hand a finished record on (at once, or after follow-up work such as archiving)."""
        ...

    def close(self, timeout: float) -> None:
        """Finish background work within `timeout` seconds (worker shutdown)."""
        ...


# Builds a provider from its entry, with the process-wide transport defaults.
ProviderFactory = Callable[[ProviderConfig, Network], Provider]

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


def build_provider(config: ProviderConfig, network: Network | None = None) -> Provider:
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
    try:
        return kind.factory(config, network or Network())
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"providers.{config.name}: {exc}") from None


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
