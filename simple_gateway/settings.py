"""Every setting, declared once: name, type, default, help; loaded and validated at start-up.

Sources, lowest precedence first: the defaults below, the YAML file (`GATEWAY_CONFIG`,
else `./gateway.yaml` when present), the `.env` file, the process environment. YAML
keys are the setting names in lower case; `${VAR}` in YAML strings is expanded from the
environment. Providers are declared in YAML under `providers.<name>` and each one's
base URL can be overridden by `<NAME>_UPSTREAM_URL`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from simple_gateway.redaction import (
    hide_database_password,
    is_secret_name,
    redact_value,
    url_has_credentials,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _to_optional_float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _to_optional_int(value: str) -> int | None:
    return int(value) if value.strip() else None


def _to_networks(value: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR blocks (`10.0.0.0/8, ::1`)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: str  # as it would be written in .env; "" means unset
    help: str
    minimum: float | None = None
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", str, "127.0.0.1", "Address to listen on (0.0.0.0 for every interface)."),
    Setting("PORT", int, "8080", "Port to listen on.", minimum=1),
    Setting("WORKERS", _to_optional_int, "", "gunicorn worker processes; empty: the CPU count.", 1),
    Setting("THREADS", int, "1024", "Threads per worker: the most concurrent requests each.", 1),
    Setting(
        "GRACEFUL_TIMEOUT", float, "30", "Seconds in-flight requests get to finish on stop.", 1
    ),
    Setting("KEEPALIVE", float, "75", "Seconds an idle client connection is kept open.", 0),
    Setting(
        "HEADER_TIMEOUT", float, "10", "Seconds a client has to send a request's headers.", 0.1
    ),
    Setting(
        "LOG_LEVEL",
        str.lower,
        "info",
        "debug, info, warning or error.",
        choices=("debug", "info", "warning", "error"),
    ),
    Setting("ACCESS_LOG", _to_bool, "true", "Write one access-log line per request to stdout."),
    Setting("DEFAULT_PROVIDER", str, "openai", "Provider that serves the bare /v1/* routes."),
    Setting("UPSTREAM_CONNECT_TIMEOUT", float, "10", "Seconds to connect to a provider.", 0.1),
    Setting(
        "UPSTREAM_READ_TIMEOUT",
        float,
        "600",
        "Seconds a provider may stay silent (before headers or between chunks).",
        0.1,
    ),
    Setting(
        "UPSTREAM_CA_BUNDLE",
        str,
        "",
        "CA bundle (PEM) to verify HTTPS providers with; empty: the system trust store.",
    ),
    Setting(
        "GATEWAY_API_KEYS",
        str,
        "",
        "Keys clients must present (comma-separated, or @file of SHA-256 digests); empty: none.",
    ),
    Setting("MAX_REQUEST_BODY_MB", float, "512", "Largest request body accepted, in MiB.", 0.01),
    Setting("RECORDS_ENABLED", _to_bool, "true", "Record every exchange in the database."),
    Setting(
        "DB_PATH", str, "data/gateway.db", "SQLite database file (when DATABASE_URL is empty)."
    ),
    Setting("DATABASE_URL", str, "", "postgresql://user@host/db to record into PostgreSQL."),
    Setting("FILE_STORAGE_PATH", str, "data/files", "Folder for binary and large bodies."),
    Setting("SPOOL_PATH", str, "data/spool", "Folder for records waiting for the database."),
    Setting("BODY_INLINE_LIMIT_KB", int, "256", "Text bodies up to this size stay in the row.", 0),
    Setting("WRITER_QUEUE_SIZE", int, "10000", "Records waiting for the writer, per worker.", 1),
    Setting("WRITER_BATCH_SIZE", int, "500", "Records written per transaction, at most.", 1),
    Setting("WRITER_FLUSH_INTERVAL", float, "0.2", "Seconds a record waits for a batch.", 0.001),
    Setting(
        "JOURNAL_ENABLED",
        _to_bool,
        "true",
        "Journal finished records until written, so a killed worker loses none.",
    ),
    Setting(
        "RETENTION_DAYS", _to_optional_float, "", "Delete records older than this; empty: keep."
    ),
    Setting(
        "RETENTION_MAX_ROWS", _to_optional_int, "", "Keep at most this many records; empty: all."
    ),
    Setting("METRICS_ENABLED", _to_bool, "true", "Serve Prometheus metrics at /metrics."),
    Setting(
        "STATUS_TOKEN",
        str,
        "",
        "Bearer token for the full /status; without it /status shows only health and version.",
    ),
    Setting("METRICS_TOKEN", str, "", "Bearer token /metrics asks for; empty: /metrics is open."),
    Setting(
        "TRUSTED_PROXIES",
        _to_networks,
        "",
        "Addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client.",
    ),
    Setting(
        "ADMIN_TOKEN",
        str,
        "",
        "Dashboard login token; empty (and no ADMIN_USER): one is generated in the data folder.",
    ),
    Setting(
        "ADMIN_USER", str, "", "Dashboard login name (with ADMIN_PASSWORD), instead of a token."
    ),
    Setting("ADMIN_PASSWORD", str, "", "Dashboard password for ADMIN_USER."),
)

_BY_NAME = {s.name: s for s in SETTINGS}
# Top-level YAML sections owned by feature packages rather than by this table.
SECTIONS: tuple[str, ...] = ("guardrails", "models", "routing")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UPSTREAM_ENV = re.compile(r"^([A-Z][A-Z0-9_]*)_UPSTREAM_URL$")


@dataclass(frozen=True)
class ProviderConfig:
    """A provider as configured: its registered type, base URL and extra options."""

    name: str
    type: str
    base_url: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]
    providers: Mapping[str, ProviderConfig]
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "defaults"
    # Feature sections of the YAML file (guardrails, models, routing, ...), already
    # `${VAR}`-expanded; each feature package parses and validates its own section.
    sections: Mapping[str, Any] = field(default_factory=dict)
    # Things worth a warning at start-up that do not stop it (e.g. unknown names in .env).
    warnings: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def workers(self) -> int:
        return self.values["WORKERS"] or _cpu_count()

    @property
    def max_request_body(self) -> int:
        return int(self.values["MAX_REQUEST_BODY_MB"] * 1024 * 1024)

    @property
    def body_inline_limit(self) -> int:
        return self.values["BODY_INLINE_LIMIT_KB"] * 1024

    def summary(self) -> dict[str, Any]:
        """Settings safe to show: DATABASE_URL loses its password, tokens their value."""
        shown = dict(self.values)
        shown["DATABASE_URL"] = hide_database_password(shown["DATABASE_URL"])
        for name, value in shown.items():
            if value and is_secret_setting(name):
                shown[name] = redact_value(str(value))
            elif isinstance(value, tuple):
                shown[name] = [str(item) for item in value]
        if shown["GATEWAY_API_KEYS"] and not shown["GATEWAY_API_KEYS"].startswith("@"):
            shown["GATEWAY_API_KEYS"] = "[REDACTED]"
        return shown


def is_secret_setting(name: str) -> bool:
    """A setting holding a secret: named as a key, token or password, plural too (`..._KEYS`)."""
    return is_secret_name(name) or (name.upper().endswith("S") and is_secret_name(name[:-1]))


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    dotenv_path: str | None = ".env",
) -> Settings:
    """Merge the four sources and validate; raise SettingsError naming the bad key."""
    env = dict(os.environ if environ is None else environ)
    dotenv = _read_dotenv(dotenv_path)
    merged_env = {**dotenv, **env}
    path = config_path or merged_env.get("GATEWAY_CONFIG") or _default_config_path()
    document = _read_yaml(path, merged_env) if path else {}

    raw: dict[str, tuple[str, str]] = {s.name: (s.default, "default") for s in SETTINGS}
    for key, value in document.items():
        name = key.upper()
        if name in ("PROVIDERS", "PRICES") or key in SECTIONS:
            continue
        if name not in _BY_NAME:
            raise SettingsError(f"{path}: unknown setting '{key}'")
        raw[name] = ("" if value is None else _yaml_scalar(value), str(path))
    sources: tuple[tuple[str, Mapping[str, str]], ...] = ((".env", dotenv), ("environment", env))
    for source_name, source in sources:
        for name in _BY_NAME:
            if name in source:
                raw[name] = (source[name], source_name)

    values = {name: _parse(_BY_NAME[name], text, origin) for name, (text, origin) in raw.items()}
    providers = _load_providers(document.get("providers") or {}, merged_env, path or "")
    if values["DEFAULT_PROVIDER"] not in providers:
        raise SettingsError(
            f"DEFAULT_PROVIDER: no provider named '{values['DEFAULT_PROVIDER']}' "
            f"(known: {', '.join(sorted(providers))})"
        )
    prices = document.get("prices") or {}
    if not isinstance(prices, dict):
        raise SettingsError(f"{path}: 'prices' must be a mapping of model to prices")
    sections = {key: document[key] for key in SECTIONS if document.get(key) is not None}
    warnings = []
    unknown = _unknown_dotenv_names(dotenv, path)
    if unknown:
        warnings.append(
            f"{dotenv_path}: unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (ignored; .env.example lists every setting)"
        )
    return Settings(
        values=values,
        providers=providers,
        prices=prices,
        source=path or "defaults",
        sections=sections,
        warnings=tuple(warnings),
    )


def _unknown_dotenv_names(dotenv: Mapping[str, str], config_path: str | None) -> list[str]:
    """Names in .env that no setting reads: a typo (`PROT=8081`) would pass silently.

    Settings, `<NAME>_UPSTREAM_URL`, GATEWAY_CONFIG and variables the YAML file refers to as
    `${VAR}` are all read.
    """
    referenced: set[str] = set()
    if config_path and os.path.isfile(config_path):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = Path(config_path).read_text(encoding="utf-8")
            referenced = {m.group(1) for m in _ENV_REF.finditer(text)}
    return sorted(
        name
        for name in dotenv
        if name not in _BY_NAME
        and name != "GATEWAY_CONFIG"
        and name not in referenced
        and not _UPSTREAM_ENV.match(name)
    )


BUILTIN_PROVIDERS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "replicate": "https://api.replicate.com",
}
# A provider named after one of these types needs no `type:` (azure has no default URL).
_NAMED_TYPES = frozenset({*BUILTIN_PROVIDERS, "azure", "compatible"})


def _load_providers(declared: Any, env: Mapping[str, str], path: str) -> dict[str, ProviderConfig]:
    if not isinstance(declared, dict):
        raise SettingsError(f"{path}: 'providers' must be a mapping of name to settings")
    entries: dict[str, dict[str, Any]] = {
        name: {"base_url": url} for name, url in BUILTIN_PROVIDERS.items()
    }
    for name, options in declared.items():
        if not isinstance(options, dict):
            raise SettingsError(f"{path}: providers.{name} must be a mapping")
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", str(name)):
            raise SettingsError(
                f"{path}: provider name '{name}' must be lower-case letters, digits, - or _"
            )
        entries[str(name)] = {**entries.get(str(name), {}), **options}
    origins = {name: f"providers.{name}.base_url" for name in entries}
    for key, value in env.items():
        match = _UPSTREAM_ENV.match(key)
        if match:
            name = match.group(1).lower()
            if name not in entries and name.replace("_", "-") in entries:
                name = name.replace("_", "-")
            entries.setdefault(name, {})["base_url"] = value
            origins[name] = key
    providers = {}
    for name, options in entries.items():
        base_url = str(options.get("base_url") or "")
        origin = origins[name]
        if url_has_credentials(base_url):
            raise SettingsError(
                f"{origin}: provider '{name}' has credentials in its URL (user:password@); "
                "remove them and send them as a header instead (e.g. Authorization)"
            )
        if base_url and not re.match(r"^https?://[^/\s]+", base_url):
            raise SettingsError(f"{origin}: expected an http(s) URL, got '{base_url}'")
        kind = str(options.get("type") or (name if name in _NAMED_TYPES else "compatible"))
        extra = {k: v for k, v in options.items() if k not in ("base_url", "type")}
        providers[name] = ProviderConfig(name, kind, base_url.rstrip("/"), extra)
    return providers


def _parse(setting: Setting, text: str, origin: str) -> Any:
    try:
        value = setting.parse(text)
    except ValueError as exc:
        raise SettingsError(f"{setting.name}: {exc} (got '{text}' from {origin})") from None
    if setting.choices and value not in setting.choices:
        raise SettingsError(
            f"{setting.name}: expected one of {', '.join(setting.choices)} "
            f"(got '{text}' from {origin})"
        )
    if setting.minimum is not None and value is not None and value < setting.minimum:
        raise SettingsError(
            f"{setting.name}: must be at least {setting.minimum} (got '{text}' from {origin})"
        )
    return value


def _read_dotenv(path: str | None) -> dict[str, str]:
    if not path or not os.path.isfile(path):
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _default_config_path() -> str | None:
    return "gateway.yaml" if os.path.isfile("gateway.yaml") else None


def _read_yaml(path: str, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"GATEWAY_CONFIG: cannot read {path}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    return _expand(document, env)


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a YAML document."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    return value


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
