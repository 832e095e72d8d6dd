"""Configuration checks run once in the master, before any worker forks.

Each feature builds what its configuration describes here, so that a bad entry (an
unknown provider type, a malformed price, an invalid guardrail) stops the start with
one line naming it, instead of a traceback from every worker. A check raises
`SettingsError`; anything else it raises is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Callable

from simple_gateway.settings import Settings, SettingsError

Check = Callable[[Settings], None]


def _providers(settings: Settings) -> None:
    import os

    from simple_gateway.providers import build_provider, register_builtin_types
    from simple_gateway.proxy.transport import Network, tls_context

    register_builtin_types()
    network = Network.from_environment(os.environ, settings.upstream_ca_bundle)
    try:
        tls_context(network.ca_bundle, None, None)
    except (ValueError, OSError) as exc:
        raise SettingsError(f"UPSTREAM_CA_BUNDLE: {exc}") from None
    for config in settings.providers.values():
        try:
            build_provider(config, network)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


def _gateway_keys(settings: Settings) -> None:
    from simple_gateway.keys import GatewayKeys

    try:
        GatewayKeys.parse(settings.gateway_api_keys)
    except ValueError as exc:
        raise SettingsError(f"GATEWAY_API_KEYS: {exc}") from None


def _prices(settings: Settings) -> None:
    from simple_gateway.records.cost import PriceTable

    try:
        PriceTable.load(settings.prices)
    except ValueError as exc:
        raise SettingsError(f"prices: {exc}") from None


def _database(settings: Settings) -> None:
    """DATABASE_URL names a store this gateway can open (nothing connects yet)."""
    from simple_gateway.store.registry import open_store

    if not settings.records_enabled:
        return
    try:
        open_store(settings.database_url or None, settings.db_path)
    except ValueError as exc:
        name = "DATABASE_URL" if settings.database_url else "DB_PATH"
        raise SettingsError(f"{name}: {exc}") from None


def _guardrails(settings: Settings) -> None:
    from simple_gateway.guardrails import build_config

    try:
        build_config(settings)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _models(settings: Settings) -> None:
    from simple_gateway.providers import register_builtin_types
    from simple_gateway.routing.config import parse_models
    from simple_gateway.translate.formats import register_builtin_formats

    register_builtin_types()
    register_builtin_formats()
    parse_models(
        settings.sections.get("models"), settings.sections.get("routing"), settings.providers
    )


def _dashboard(settings: Settings) -> None:
    from simple_gateway.dashboard.auth import check_settings

    check_settings(settings)


# One entry per feature that reads configuration; each runs in the order listed.
CHECKS: tuple[Check, ...] = (
    _providers,
    _gateway_keys,
    _prices,
    _database,
    _models,
    _guardrails,
    _dashboard,
)


def preflight(settings: Settings) -> None:
    """Raise SettingsError for the first configuration problem found."""
    for check in CHECKS:
        check(settings)
