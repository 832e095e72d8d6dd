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
    from simple_gateway.providers import build_provider, register_builtin_types

    register_builtin_types()
    for config in settings.providers.values():
        try:
            build_provider(config)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


def _prices(settings: Settings) -> None:
    from simple_gateway.records.cost import PriceTable

    try:
        PriceTable.load(settings.prices)
    except ValueError as exc:
        raise SettingsError(f"prices: {exc}") from None


def _dashboard(settings: Settings) -> None:
    from simple_gateway.dashboard.auth import check_settings

    check_settings(settings)


# One entry per feature that reads configuration; each runs in the order listed.
CHECKS: tuple[Check, ...] = (_providers, _prices, _dashboard)


def preflight(settings: Settings) -> None:
    """Raise SettingsError for the first configuration problem found."""
    for check in CHECKS:
        check(settings)
