"""Configuration checks run once in the master, before any worker forks.

Each feature builds what its configuration describes here, so that a bad entry (an
unknown provider type, a malformed price, an invalid guardrail) stops the start with
one line naming it, instead of a traceback from every worker. A check raises
`SettingsError`; anything else it raises is a bug and propagates.
"""

from __future__ import annotations

import json
import os
import threading
import traceback
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
    """Raise SettingsError for the first configuration problem found.

    The checks build everything the configuration describes, which imports most of the
    gateway (Flask, guardrails, routing): 20 MB the gunicorn master would then hold for
    its whole life without using it. So a single-threaded process (the master, before
    any worker exists) runs them in a forked child and only reads the verdict back.
    """
    if threading.active_count() > 1 or not hasattr(os, "fork"):
        _run_checks(settings)  # forking a threaded process is not safe
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the checks, report, exit without cleanup
        os.close(read)
        verdict = {"kind": "ok", "message": ""}
        try:
            _run_checks(settings)
        except SettingsError as exc:
            verdict = {"kind": "settings", "message": str(exc)}
        except BaseException:
            verdict = {"kind": "bug", "message": traceback.format_exc()}
        with os.fdopen(write, "w") as out:
            out.write(json.dumps(verdict))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    os.waitpid(pid, 0)
    verdict = json.loads(text) if text else {"kind": "bug", "message": "the check died"}
    if verdict["kind"] == "settings":
        raise SettingsError(verdict["message"])
    if verdict["kind"] == "bug":
        raise RuntimeError(f"a configuration check failed:\n{verdict['message']}")


def _run_checks(settings: Settings) -> None:
    for check in CHECKS:
        check(settings)
