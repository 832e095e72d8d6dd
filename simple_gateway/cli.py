"""The command line: `simple-gateway` / `python -m simple_gateway` [serve | check].

Configuration is loaded and checked here, once, in the process that will become
gunicorn's master: a bad setting stops the start with one line naming it (exit 2),
before any worker exists.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from simple_gateway import __version__
from simple_gateway.preflight import preflight
from simple_gateway.settings import Settings, SettingsError, load_settings

PROG = "simple-gateway"
CONFIG_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    # The options are accepted before or after the command (`check --config x.yaml`).
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--host", default=argparse.SUPPRESS, help="address to listen on (HOST)")
    options.add_argument(
        "--port", type=int, default=argparse.SUPPRESS, help="port to listen on (PORT)"
    )
    options.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="YAML configuration file (GATEWAY_CONFIG)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[options],
        description=(
            "A transparent, recording gateway between applications and AI providers. "
            "Settings come from defaults, a YAML file, .env and the environment "
            "(see .env.example); these options override them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", parents=[options], help="run the gateway (the default)")
    commands.add_parser(
        "check", parents=[options], help="load and validate the configuration, then exit"
    )
    return parser


def load_checked(
    environ: Mapping[str, str] | None = None, config_path: str | None = None
) -> Settings:
    """Settings loaded and preflighted; on a configuration error, one line and exit 2.

    Warnings (such as unknown names in .env) are printed once, here.
    """
    try:
        settings = load_settings(environ, config_path=config_path)
        preflight(settings)
    except SettingsError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR) from None
    for warning in settings.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `simple-gateway` and `python -m simple_gateway`."""
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    if "host" in args:
        environ["HOST"] = args.host
    if "port" in args:
        environ["PORT"] = str(args.port)
    settings = load_checked(environ, getattr(args, "config", None))
    if args.command == "check":
        print(f"{PROG}: configuration ok: {summary(settings)}")
        return 0
    from simple_gateway.server import AddressInUse, serve

    try:
        serve(settings)
    except AddressInUse as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


def summary(settings: Settings) -> str:
    """The configuration in one line."""
    from simple_gateway.server import describe_config, describe_records

    return (
        f"config {describe_config(settings)}; "
        f"listen {settings.host}:{settings.port}; "
        f"providers {', '.join(sorted(settings.providers))} "
        f"(default {settings.default_provider}); "
        f"records {describe_records(settings)}"
    )
