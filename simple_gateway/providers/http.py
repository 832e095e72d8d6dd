"""HTTP providers reached at a base URL, and the OpenAI and OpenAI-compatible types.

`HTTPProvider` holds what every type shares: the options common to all provider
entries (keys, static headers, timeouts and their per-path overrides, TLS files),
the connection target, and the credential handling driven by class attributes a
type sets: where a client may present a key (`key_headers`, `key_query`) and where
the gateway puts the provider's own key (`auth_header`, `auth_scheme`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar
from urllib.parse import quote, unquote_plus

from simple_gateway.errors import GatewayError
from simple_gateway.providers.base import UpstreamRequest
from simple_gateway.providers.keyring import KeyRing
from simple_gateway.proxy.transport import Network, Transport
from simple_gateway.proxy.upstream import Target, split_url
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import Record
from simple_gateway.settings import ProviderConfig

# Keys every HTTP provider entry may have, beyond providers.base.COMMON_OPTIONS.
HTTP_OPTIONS = frozenset(
    {
        "api_key",
        "headers",
        "connect_timeout",
        "read_timeout",
        "paths",
        "ca_bundle",
        "client_cert",
        "client_key",
    }
)
_PATH_OPTIONS = frozenset({"connect_timeout", "read_timeout"})


class HTTPProvider:
    """A provider reached by joining its base URL and the request path."""

    # YAML keys this type reads beyond HTTP_OPTIONS.
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    # Where clients present keys (lower-case header names; query parameters).
    key_headers: ClassVar[tuple[str, ...]] = ("authorization",)
    key_query: ClassVar[tuple[str, ...]] = ()
    # Where the gateway puts the provider's own key.
    auth_header: ClassVar[str] = "Authorization"
    auth_scheme: ClassVar[str] = "Bearer "

    def __init__(self, config: ProviderConfig, network: Network) -> None:
        options = config.options
        self.name = config.name
        self.base_url = config.base_url
        self.prefix = str(options.get("prefix") or f"/{config.name}").rstrip("/")
        self.keys = KeyRing.parse(options.get("api_key"))
        self.headers = _headers(options.get("headers"))
        # Added when the client sent no header of that name (API versions).
        self.default_headers: dict[str, str] = {}
        self.connect_timeout = _seconds("connect_timeout", options.get("connect_timeout"))
        self.read_timeout = _seconds("read_timeout", options.get("read_timeout"))
        self.path_timeouts = _path_timeouts(options.get("paths"))
        self.transport: Transport = network.transport_for(
            config.base_url,
            _file(options, "ca_bundle"),
            _file(options, "client_cert"),
            _file(options, "client_key"),
        )
        base = split_url(config.base_url)
        self._origin = base.origin
        self._base_path = base.path.rstrip("/")

    # -- where requests go ------------------------------------------------------------

    def upstream_url(self, path: str) -> str:
        return self.base_url + path

    def target(self, path: str) -> Target:
        connect, read = self.connect_timeout, self.read_timeout
        if self.path_timeouts:
            bare = path.partition("?")[0]
            for pattern, overrides in self.path_timeouts:
                if fnmatchcase(bare, pattern):
                    connect = overrides.get("connect_timeout", connect)
                    read = overrides.get("read_timeout", read)
                    break
        return Target(self._origin, self._base_path + path, self.transport, connect, read)

    # -- keys ---------------------------------------------------------------------------

    @property
    def has_keys(self) -> bool:
        return len(self.keys) > 0

    def pick_key(self) -> str | None:
        return self.keys.pick()

    def credentials(self, request: UpstreamRequest) -> list[str]:
        found = []
        for name, value in request.headers.items():
            if name.lower() in self.key_headers and value.strip():
                scheme, _, credential = value.strip().partition(" ")
                found.append(credential.strip() if credential else scheme)
        if self.key_query:
            for name, value in _query_pairs(request.path):
                if name in self.key_query and value:
                    found.append(value)
        return found

    def replace_credentials(self, request: UpstreamRequest, key: str | None) -> None:
        for name in [n for n in request.headers if n.lower() in self.key_headers]:
            del request.headers[name]
        if self.key_query:
            request.path = _without_query(request.path, self.key_query)
        if key is not None:
            request.headers[self.auth_header] = self.auth_scheme + key

    # -- the request and the reply -------------------------------------------------------

    def prepare(self, request: UpstreamRequest) -> None:
        if self.default_headers:
            present = {name.lower() for name in request.headers}
            for name, value in self.default_headers.items():
                if name.lower() not in present:
                    request.headers[name] = value
        for name, value in self.headers.items():
            _set_header(request.headers, name, value)

    def error_body(self, error: GatewayError) -> bytes:
        return error.body()

    def finish(
        self, record: Record, submit: Callable[[Record], None], blobs: BlobStore | None
    ) -> None:
        submit(record)

    def close(self, timeout: float) -> None:
        return None


class OpenAIProvider(HTTPProvider):
    """api.openai.com: `Authorization: Bearer <key>`."""


class CompatibleProvider(HTTPProvider):
    """Any OpenAI-compatible server (Ollama, vLLM, Groq, Mistral, Together, OpenRouter)."""


# -- option parsing (each raises ValueError naming the option) ---------------------------


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
    return float(value)


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("headers: expected a mapping of header name to value")
    for name, header_value in value.items():
        if not isinstance(header_value, (str, int, float)) or isinstance(header_value, bool):
            raise ValueError(f"headers.{name}: expected a string value")
        if "\n" in str(header_value) or "\r" in str(header_value):
            raise ValueError(f"headers.{name}: a header value cannot span lines")
    return {name: str(v) for name, v in value.items()}


def _path_timeouts(value: Any) -> list[tuple[str, dict[str, float]]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ValueError('paths: expected a mapping such as {"/v1/audio/*": {read_timeout: 1200}}')
    overrides = []
    for pattern, settings in value.items():
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ValueError(f"paths: '{pattern}' must be a path pattern starting with /")
        if not isinstance(settings, dict):
            raise ValueError(f"paths.{pattern}: expected a mapping of settings")
        unknown = sorted(set(settings) - _PATH_OPTIONS)
        if unknown:
            raise ValueError(
                f"paths.{pattern}: unknown key '{unknown[0]}' "
                f"(allowed: {', '.join(sorted(_PATH_OPTIONS))})"
            )
        parsed = {name: _seconds(f"paths.{pattern}.{name}", v) for name, v in settings.items()}
        overrides.append((pattern, {k: v for k, v in parsed.items() if v is not None}))
    # The most specific (longest) pattern is tried first.
    return sorted(overrides, key=lambda entry: len(entry[0]), reverse=True)


def _file(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a file path")
    return value


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    for existing in [n for n in headers if n.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _query_pairs(path: str) -> list[tuple[str, str]]:
    query = path.partition("?")[2]
    pairs = []
    for part in query.split("&") if query else ():
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def _without_query(path: str, names: tuple[str, ...]) -> str:
    """The path with the named query parameters removed; the rest keeps its encoding."""
    bare, sep, query = path.partition("?")
    if not sep:
        return path
    kept = [p for p in query.split("&") if unquote_plus(p.partition("=")[0]) not in names]
    return bare + ("?" + "&".join(kept) if kept else "")


def with_query_default(path: str, name: str, value: str) -> str:
    """Add `name=value` to the query unless the client gave that parameter."""
    if any(n == name for n, _ in _query_pairs(path)):
        return path
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}{quote(name)}={quote(value)}"
