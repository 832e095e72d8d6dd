"""The front door: model aliases and provider/model names on the OpenAI-style routes.

design: the forwarder asks `plan()` about every request. A request that cannot name an
alias costs a dictionary lookup of its path; one on `/v1/chat/completions` or
`/v1/embeddings` costs a byte search (and a regex over the body only when an alias or a
`/` could be there). Only a request that does name an alias or a known provider/model
is parsed as JSON. Everything else goes to the default provider byte for byte.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from simple_gateway import errors
from simple_gateway.providers import Provider, Route
from simple_gateway.providers.base import UpstreamRequest
from simple_gateway.proxy.headers import CREDENTIAL_HEADERS
from simple_gateway.proxy.upstream import Response, UpstreamConnection
from simple_gateway.records.model import Record
from simple_gateway.routing.attempts import (
    AttemptLoop,
    Prepared,
    RoutingObserver,
    SendFn,
    attempt_sequence,
)
from simple_gateway.routing.choice import Cooldowns, attempt_order
from simple_gateway.routing.config import Deployment, ModelsConfig
from simple_gateway.routing.models_list import ModelsListing
from simple_gateway.settings import ProviderConfig
from simple_gateway.translate.base import JSON, BodyTransform
from simple_gateway.translate.formats import CHAT, EMBEDDINGS, format_for

_KINDS = {"/v1/chat/completions": CHAT, "/v1/embeddings": EMBEDDINGS}
_MODEL_VALUE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')
ROUTING_BODY_LIMIT = 32 * 1024 * 1024  # larger bodies on these routes pass through unread
DEPLOYMENT_HEADER = "x-gateway-deployment"
# Client headers that do not travel to a provider of another format.
_CLIENT_ONLY = frozenset(
    {
        "authorization", "x-api-key", "api-key", "x-goog-api-key", "content-length",
        "transfer-encoding", "accept-encoding", "content-type", "openai-organization",
        "openai-project", "openai-beta",
    }
)  # fmt: skip
_REPLACED_BY_TRANSFORM = frozenset({"content-length", "content-encoding", "content-type"})

Body = bytes | Iterator[bytes] | None


class UpstreamKeys(Protocol):
    """The key to send to a provider for a routed call."""

    def key_for(self, provider: str, client_key: str | None) -> str | None: ...


class ClientKeys:
    """The client's own key goes upstream, in the provider's own header."""

    def key_for(self, provider: str, client_key: str | None) -> str | None:
        return client_key


class Routed(Protocol):
    """A request the front door took over: how it is sent and how its reply comes back."""

    def send(
        self, send: SendFn, stopped: Stopped, record: Record, outgoing: dict[str, str]
    ) -> tuple[UpstreamConnection, Response]: ...

    def transform(self, response: Response) -> BodyTransform | None: ...

    def client_headers(
        self, headers: list[tuple[str, str]], transform: BodyTransform | None
    ) -> list[tuple[str, str]]: ...


class Stopped(Protocol):
    def __call__(self) -> bool: ...


class FrontDoor:
    def __init__(
        self,
        config: ModelsConfig,
        providers: Mapping[str, Provider],
        provider_configs: Mapping[str, ProviderConfig],
        default: Provider,
        *,
        keys: UpstreamKeys | None = None,
        observer: RoutingObserver | None = None,
        inline_limit: int = 256 * 1024,
    ) -> None:
        self.config = config
        self.aliases = config.aliases
        self.providers = providers
        self.default = default
        self.keys = keys or ClientKeys()
        self.observer = observer
        self.inline_limit = inline_limit
        self.cooldowns = Cooldowns()
        self.rng = random.Random()
        self._direct: dict[str, Deployment] = {}
        for name, provider_config in provider_configs.items():
            if format_for(provider_config.type) is not None:
                self._direct[name] = Deployment(name, "", provider_config.type)

    def plan(self, path: str, route: Route, method: str, body: Body) -> tuple[Routed | None, Body]:
        """The routed form of a request, or None to forward it untouched; and its body."""
        kind = _KINDS.get(path)
        if kind is None:
            if self.aliases and method == "GET" and path == "/v1/models":
                return ModelsListing(self.aliases, route), body
            return None, body
        if method != "POST" or body is None:
            return None, body
        data: bytes | None
        if isinstance(body, bytes):
            data = body
        else:
            data, body = _gather(body)
            if data is None:
                return None, body
        if not self.aliases and b"/" not in data:
            return None, body
        names = [raw.decode("utf-8", "replace") for raw in _MODEL_VALUE.findall(data)]
        if not any(self.resolve(name) for name in names):
            return None, body
        try:
            request = json.loads(data)
        except ValueError:
            return None, body  # the provider explains what is wrong with it
        name = request.get("model") if isinstance(request, dict) else None
        deployments = self.resolve(name) if isinstance(name, str) else None
        if not deployments:
            return None, body
        return RoutedCall(self, kind, request, name, deployments), data  # type: ignore[arg-type]

    def resolve(self, name: str) -> Sequence[Deployment] | None:
        """The deployments a model name stands for; None for a plain model name."""
        deployments = self.aliases.get(name)
        if deployments is not None:
            return deployments
        provider, sep, model = name.partition("/")
        template = self._direct.get(provider) if sep else None
        if template is None or not model:
            return None
        return (Deployment(template.provider, model, template.provider_type),)


class RoutedCall:
    """A chat or embeddings request for an alias or a provider/model name."""

    def __init__(
        self,
        door: FrontDoor,
        kind: str,
        request: JSON,
        alias: str,
        deployments: Sequence[Deployment],
    ) -> None:
        self.door = door
        self.kind = kind
        self.request = request
        self.alias = alias
        self.deployments = deployments
        self.answered: Deployment | None = None
        self.secrets: list[str] = []  # keys put in upstream, to scrub from the record

    def send(
        self, send: SendFn, stopped: Stopped, record: Record, outgoing: dict[str, str]
    ) -> tuple[UpstreamConnection, Response]:
        door = self.door
        record.alias = self.alias
        order = attempt_order(self.deployments, door.cooldowns, door.rng)
        sequence = attempt_sequence(order, door.config.routing.retries)
        prepared = {d.name: self._prepare(d, outgoing) for d in order}  # a 400 before any send
        record.secrets += self.secrets
        loop = AttemptLoop(door.config.routing, door.cooldowns, door.observer, door.rng, stopped)
        try:
            deployment, conn, response = loop.run(
                sequence, lambda d: prepared[d.name], send, record.attempts.append
            )
        finally:
            self._describe(record, prepared)
        self.answered = deployment
        return conn, response

    def _describe(self, record: Record, prepared: Mapping[str, Prepared]) -> None:
        if not record.attempts:
            return
        name = record.attempts[-1].deployment
        deployment = next(d for d in self.deployments if d.name == name)
        provider = self.door.providers[deployment.provider]
        call = prepared[name]
        record.deployment = name
        record.provider = deployment.provider
        record.model = deployment.model
        record.upstream_url = provider.base_url + call.target.path.split("?", 1)[0]
        limit = self.door.inline_limit
        text = call.body[:limit].decode("utf-8", "replace")
        if len(call.body) > limit:
            text += f"\n[truncated by the gateway: {len(call.body)} bytes]"
        record.upstream_request_body = text

    def _prepare(self, deployment: Deployment, outgoing: dict[str, str]) -> Prepared:
        wire = format_for(deployment.provider_type)
        assert wire is not None  # checked when the configuration was built
        call = wire.request(self.kind, self.request, deployment.model, deployment.max_tokens)
        key = self.door.keys.key_for(deployment.provider, _client_key(outgoing))
        # The client's credential never travels as it came: it may be a gateway key, or a
        # key already settled for the default provider; only the deployment's key goes.
        if call.translated:
            headers = {k: v for k, v in outgoing.items() if k.lower() not in _CLIENT_ONLY}
            headers.update(call.headers)
            headers["Content-Type"] = "application/json"
            headers["Accept-Encoding"] = "identity"
        else:
            dropped = ("content-length", *CREDENTIAL_HEADERS)
            headers = {k: v for k, v in outgoing.items() if k.lower() not in dropped}
        headers["Content-Length"] = str(len(call.body))
        provider = self.door.providers[deployment.provider]
        if key is None and provider.has_keys:  # no gateway key, and the client sent none
            raise errors.InvalidApiKey(
                f"provider '{provider.name}' needs an API key: send your own key, or ask for a "
                "gateway key (the gateway uses its provider keys only for gateway-key holders)"
            )
        request = UpstreamRequest(call.path, headers)
        provider.replace_credentials(request, key)  # the key in this provider's own place
        provider.prepare(request)  # its static headers, version defaults, path conventions
        if key:
            self.secrets.append(key)
        return Prepared(provider.target(request.path), request.headers, call.body)

    def transform(self, response: Response) -> BodyTransform | None:
        deployment = self.answered
        assert deployment is not None
        wire = format_for(deployment.provider_type)
        assert wire is not None
        content_type = response.getheader("Content-Type") or ""
        return wire.response(
            self.kind, self.request, deployment.model, response.status, content_type
        )

    def client_headers(
        self, headers: list[tuple[str, str]], transform: BodyTransform | None
    ) -> list[tuple[str, str]]:
        assert self.answered is not None
        if transform is not None:
            headers = [(n, v) for n, v in headers if n.lower() not in _REPLACED_BY_TRANSFORM]
            headers.append(("Content-Type", transform.content_type))
        headers.append((DEPLOYMENT_HEADER, self.answered.name))
        return headers


def _client_key(headers: Mapping[str, str]) -> str | None:
    for name, value in headers.items():
        lower = name.lower()
        if lower == "authorization":
            scheme, _, credential = value.partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else None
        if lower in CREDENTIAL_HEADERS:
            return value
    return None


def _gather(body: Iterator[bytes]) -> tuple[bytes | None, Body]:
    """Read a streamed body for routing, up to a limit; past it, give it back whole."""
    parts: list[bytes] = []
    size = 0
    for chunk in body:
        parts.append(chunk)
        size += len(chunk)
        if size > ROUTING_BODY_LIMIT:
            return None, itertools.chain(parts, body)
    return b"".join(parts), iter(parts)  # still a stream: sent as the client sent it
