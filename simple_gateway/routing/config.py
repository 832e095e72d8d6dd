"""The `models:` and `routing:` sections: aliases, their deployments, and the defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simple_gateway.settings import ProviderConfig, SettingsError
from simple_gateway.translate.base import DEFAULT_MAX_TOKENS
from simple_gateway.translate.formats import format_for

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DEPLOYMENT_KEYS = frozenset({"provider", "model", "weight", "fallback", "timeout", "max_tokens"})
_ROUTING_KEYS = frozenset({"retries", "cooldown", "backoff", "max_backoff"})


@dataclass(frozen=True)
class Deployment:
    """One provider model an alias can send a request to."""

    provider: str
    model: str
    provider_type: str
    weight: float = 1.0
    fallback: bool = False
    timeout: float | None = None  # bounds the connect and every wait for the provider
    max_tokens: int = DEFAULT_MAX_TOKENS

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class RoutingDefaults:
    retries: int = 2  # attempts beyond one per deployment
    cooldown: float = 30.0  # seconds a failed deployment is taken out of rotation
    backoff: float = 0.25  # first pause before trying a deployment again
    max_backoff: float = 8.0


@dataclass(frozen=True)
class ModelsConfig:
    aliases: Mapping[str, tuple[Deployment, ...]] = field(default_factory=dict)
    routing: RoutingDefaults = RoutingDefaults()


def duration(value: Any, where: str) -> float:
    """Seconds from 30, 30s, 1.5m, 500ms, 1h."""
    if isinstance(value, bool):
        raise SettingsError(f"{where}: expected a duration such as 30s, got {value!r}")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise SettingsError(f"{where}: expected a duration such as 30s or 500ms, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_models(
    models: Any, routing: Any, providers: Mapping[str, ProviderConfig]
) -> ModelsConfig:
    """Build the configuration; SettingsError names the first bad entry."""
    defaults = _routing(routing)
    if models is None:
        return ModelsConfig(routing=defaults)
    if not isinstance(models, dict):
        raise SettingsError("models: expected a mapping of alias name to a list of deployments")
    aliases: dict[str, tuple[Deployment, ...]] = {}
    for alias, entries in models.items():
        where = f"models.{alias}"
        if not isinstance(alias, str) or not alias.strip():
            raise SettingsError(f"models: alias names must be non-empty strings, got {alias!r}")
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise SettingsError(f"{where}: expected a list of deployments")
        deployments = tuple(
            _deployment(entry, f"{where}[{i}]", providers) for i, entry in enumerate(entries)
        )
        if all(d.fallback for d in deployments):
            raise SettingsError(f"{where}: every deployment is a fallback; mark one as primary")
        aliases[alias] = deployments
    return ModelsConfig(aliases, defaults)


def _routing(section: Any) -> RoutingDefaults:
    if section is None:
        return RoutingDefaults()
    if not isinstance(section, dict):
        raise SettingsError("routing: expected a mapping such as {retries: 2, cooldown: 30s}")
    for key in section:
        if key not in _ROUTING_KEYS:
            raise SettingsError(
                f"routing.{key}: unknown setting ({', '.join(sorted(_ROUTING_KEYS))})"
            )
    retries = section.get("retries", RoutingDefaults.retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise SettingsError(
            f"routing.retries: expected a whole number from 0 to 10, got {retries!r}"
        )
    return RoutingDefaults(
        retries=retries,
        cooldown=duration(section.get("cooldown", RoutingDefaults.cooldown), "routing.cooldown"),
        backoff=duration(section.get("backoff", RoutingDefaults.backoff), "routing.backoff"),
        max_backoff=duration(
            section.get("max_backoff", RoutingDefaults.max_backoff), "routing.max_backoff"
        ),
    )


def _deployment(entry: Any, where: str, providers: Mapping[str, ProviderConfig]) -> Deployment:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: expected {{provider: ..., model: ...}}")
    for key in entry:
        if key not in _DEPLOYMENT_KEYS:
            known = ", ".join(sorted(_DEPLOYMENT_KEYS))
            raise SettingsError(f"{where}.{key}: unknown field (known: {known})")
    name = entry.get("provider")
    provider = providers.get(str(name)) if name is not None else None
    if provider is None:
        known = ", ".join(sorted(providers))
        raise SettingsError(f"{where}.provider: no provider named {name!r} (known: {known})")
    if format_for(provider.type) is None:
        raise SettingsError(
            f"{where}.provider: provider '{provider.name}' is of type '{provider.type}', "
            "which model aliases cannot reach"
        )
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise SettingsError(f"{where}.model: expected the provider's model name")
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        raise SettingsError(f"{where}.weight: expected a number above 0, got {weight!r}")
    fallback = entry.get("fallback", False)
    if not isinstance(fallback, bool):
        raise SettingsError(f"{where}.fallback: expected true or false, got {fallback!r}")
    timeout = entry.get("timeout")
    seconds = None if timeout is None else duration(timeout, f"{where}.timeout")
    if seconds == 0:
        raise SettingsError(f"{where}.timeout: must be above 0")
    max_tokens = entry.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise SettingsError(f"{where}.max_tokens: expected a whole number above 0")
    return Deployment(
        provider.name, model, provider.type, float(weight), fallback, seconds, max_tokens
    )
