"""Gateway keys: who may use the gateway, and when the provider keys it holds are spent.

With `GATEWAY_API_KEYS` set (comma-separated keys, or `@path` to a file with one
SHA-256 hex digest of a key per line), every proxied request must present one of
them, as `Authorization: Bearer <key>` or in the route's own key place
(`x-api-key` on Anthropic routes, `x-goog-api-key` or `key=` on Gemini, `api-key` on
Azure). The presented key is removed and the provider's configured key, if it has
one, is put in its place; the record keeps only the key's fingerprint.

Without gateway keys, configured provider keys are never injected: a request that
brings no key of its own to a provider the gateway holds keys for is refused with
401, so an open port never spends the owner's money. Requests that bring their own
key, and providers the gateway holds no key for (a local Ollama), pass as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from simple_gateway.errors import InvalidApiKey
from simple_gateway.providers.base import Provider, UpstreamRequest

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class GatewayKeys:
    """The accepted keys, held only as SHA-256 digests."""

    def __init__(self, digests: frozenset[str]) -> None:
        self.digests = digests

    @classmethod
    def parse(cls, value: str) -> GatewayKeys | None:
        """Read the setting; None when it is empty. ValueError names what is wrong."""
        value = value.strip()
        if not value:
            return None
        if value.startswith("@"):
            return cls(_read_digests(value[1:]))
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if not keys:
            raise ValueError("no keys given")
        return cls(frozenset(digest(k) for k in keys))

    def accepts(self, key: str) -> bool:
        return digest(key) in self.digests


def _read_digests(path: str) -> frozenset[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    digests = set()
    for number, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip().lower()
        if not entry:
            continue
        if not _DIGEST.match(entry):
            raise ValueError(f"{path}:{number}: expected a SHA-256 hex digest (64 hex digits)")
        digests.add(entry)
    if not digests:
        raise ValueError(f"{path}: no key digests in the file")
    return frozenset(digests)


class KeyGate:
    """Admits a request to a provider and settles which key goes upstream."""

    def __init__(self, keys: GatewayKeys | None) -> None:
        self.keys = keys

    def admit(self, provider: Provider, path: str, headers: dict[str, str]) -> Admission:
        """Check the client's credentials; raises InvalidApiKey when the request may not go.

        Called before anything else looks at the request, so an unauthenticated one
        costs nothing (no guardrail, no provider call).
        """
        presented = provider.credentials(UpstreamRequest(path, headers))  # read, not changed
        if self.keys is not None:
            accepted = next((k for k in presented if self.keys.accepts(k)), None)
            if accepted is None:
                raise InvalidApiKey(
                    "a valid gateway key is required: send it as 'Authorization: Bearer <key>' "
                    "or in this provider's API key header"
                    if not presented
                    else "the key presented is not a valid gateway key"
                )
            return Admission(provider, path, digest(accepted)[:8], True, provider.pick_key())
        if not presented and provider.has_keys:
            raise InvalidApiKey(
                f"provider '{provider.name}' needs an API key: send your own key, or ask for a "
                "gateway key (the gateway uses its provider keys only for gateway-key holders)"
            )
        return Admission(provider, path, None, False, None)


@dataclass(frozen=True)
class Admission:
    """A request let through, and what its credentials become on the way upstream."""

    provider: Provider
    path: str
    gateway_key: str | None  # fingerprint of the gateway key presented
    replace: bool  # the client's credential is a gateway key: swap in the provider's
    key: str | None = field(repr=False)

    def apply(self, headers: dict[str, str]) -> UpstreamRequest:
        """The request as it leaves: credentials settled, the provider's conventions applied."""
        request = UpstreamRequest(self.path, headers, gateway_key=self.gateway_key)
        if self.replace:
            self.provider.replace_credentials(request, self.key)
            if self.key:
                request.secrets.append(self.key)
        self.provider.prepare(request)
        return request


class ProviderKeys:
    """The key a routed call (an alias or provider/model name) sends to its provider.

    The request already passed the gate: with gateway keys, its credential is now a
    provider key of the gateway, so the deployment's provider gets one of its own keys;
    without them the client's own key travels, never one the gateway holds.
    """

    def __init__(self, gate: KeyGate, providers: Mapping[str, Provider]) -> None:
        self.gate = gate
        self.providers = providers

    def key_for(self, provider: str, client_key: str | None) -> str | None:
        if self.gate.keys is None:
            return client_key
        target = self.providers.get(provider)
        return target.pick_key() if target is not None else None
