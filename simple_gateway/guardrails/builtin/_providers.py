"""Finding a provider of the gateway's table, and the key to call it with."""

from __future__ import annotations

from simple_gateway.guardrails.base import Options
from simple_gateway.settings import ProviderConfig


def provider_and_key(options: Options, default: str) -> tuple[ProviderConfig, str]:
    """The named provider (`provider`, else `default`) and its key: the entry's `api_key`,
    else the provider's own. A key that is missing or empty (say `${OPENAI_API_KEY}` with
    the variable unset) stops the start: a check that cannot call its service would
    otherwise pass everything."""
    name = str(options.get("provider") or default)
    provider = options.services.providers.get(name)
    if provider is None:
        known = ", ".join(sorted(options.services.providers)) or "none"
        raise ValueError(f"no provider named '{name}' (known: {known})")
    key = options.get("api_key")
    if key is None:
        key = provider.options.get("api_key")
    if not isinstance(key, str) or not key.strip() or "${" in key:
        raise ValueError(
            f"no API key: set 'api_key' (e.g. \"${{OPENAI_API_KEY}}\" with the variable set) "
            f"or providers.{name}.api_key"
        )
    return provider, key.strip()
