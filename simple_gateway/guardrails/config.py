"""The `guardrails` section of the configuration, parsed and validated.

Every problem raises ValueError naming the entry (`guardrails.input[1] (pii): ...`); the
preflight check turns it into a start-up error, once, before any worker forks.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simple_gateway.guardrails.base import Guardrail, Options, Services, Stage
from simple_gateway.guardrails.registry import factory_for

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_STREAM_CHECK_CHARS = 500
DEFAULT_WORKERS = 64

_COMMON = frozenset(
    {
        "name", "type", "priority", "timeout", "action", "on_error", "mode", "match",
        "respond", "status", "message", "stream", "enabled",
    }
)  # fmt: skip
_SECTION_KEYS = frozenset(
    {"timeout", "max_body", "stream_check_chars", "workers", "input", "output"}
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


@dataclass(frozen=True)
class Match:
    """Glob patterns scoping an entry; an empty list matches everything."""

    providers: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def could_apply(self, provider: str, path: str) -> bool:
        """Whether the entry may apply once the model is known."""
        return _any_glob(self.providers, provider) and _any_glob(self.paths, path)

    def applies(self, provider: str, path: str, model: str | None) -> bool:
        return (
            _any_glob(self.providers, provider)
            and _any_glob(self.paths, path)
            and _any_glob(self.models, model or "")
        )


def _any_glob(patterns: tuple[str, ...], value: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass
class Entry:
    """A configured guardrail with the policy around it."""

    guardrail: Guardrail
    type: str
    timeout: float
    on_error: str = "block"  # what an error or timeout means: block | allow
    mode: str = "enforce"  # enforce | monitor
    match: Match = field(default_factory=Match)
    respond: str = "error"  # error | completion
    status: int = 400
    message: str | None = None
    stream: str = "incremental"  # incremental | buffer

    @property
    def name(self) -> str:
        return self.guardrail.name

    @property
    def stage(self) -> Stage:
        return self.guardrail.stage

    @property
    def priority(self) -> int:
        return self.guardrail.priority

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"


@dataclass
class GuardrailsConfig:
    input: list[Entry]
    output: list[Entry]
    max_body: int = DEFAULT_MAX_BODY
    stream_check_chars: int = DEFAULT_STREAM_CHECK_CHARS
    workers: int = DEFAULT_WORKERS

    @property
    def empty(self) -> bool:
        return not self.input and not self.output

    def priorities(self) -> list[int]:
        return sorted({e.priority for e in (*self.input, *self.output)})


def parse_duration(value: Any, where: str) -> float:
    """Seconds from `5`, `2.5`, `300ms`, `5s` or `1m`."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a duration such as 5s or 300ms")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{where}: expected a duration such as 5s or 300ms, got {value!r}")
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number / 1000 if unit == "ms" else number * (60 if unit == "m" else 1)
    if seconds <= 0:
        raise ValueError(f"{where}: must be more than zero")
    return seconds


def parse_size(value: Any, where: str) -> int:
    """Bytes from `4194304`, `512KiB` or `4MiB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(f"{where}: expected a size such as 4MiB, got {value!r}")
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if size <= 0:
        raise ValueError(f"{where}: must be more than zero")
    return size


def load_config(section: Any, services: Services) -> GuardrailsConfig:
    """Build every configured guardrail; ValueError names the first bad entry."""
    if section is None:
        return GuardrailsConfig([], [])
    if not isinstance(section, Mapping):
        raise ValueError("guardrails: expected a mapping with 'input' and/or 'output' lists")
    unknown = sorted(set(section) - _SECTION_KEYS)
    if unknown:
        raise ValueError(f"guardrails: unknown key '{unknown[0]}'")
    timeout = parse_duration(section.get("timeout", DEFAULT_TIMEOUT), "guardrails.timeout")
    config = GuardrailsConfig(
        input=[],
        output=[],
        max_body=parse_size(section.get("max_body", DEFAULT_MAX_BODY), "guardrails.max_body"),
        stream_check_chars=_positive_int(
            section.get("stream_check_chars", DEFAULT_STREAM_CHECK_CHARS),
            "guardrails.stream_check_chars",
        ),
        workers=_positive_int(section.get("workers", DEFAULT_WORKERS), "guardrails.workers"),
    )
    for stage, entries in ((Stage.INPUT, config.input), (Stage.OUTPUT, config.output)):
        declared = section.get(str(stage)) or []
        if not isinstance(declared, list):
            raise ValueError(f"guardrails.{stage}: expected a list of guardrails")
        names: set[str] = set()
        for index, raw in enumerate(declared):
            entry = _entry(raw, stage, index, timeout, services)
            if entry is None:
                continue
            if entry.name in names:
                raise ValueError(f"guardrails.{stage}[{index}]: duplicate name '{entry.name}'")
            names.add(entry.name)
            entries.append(entry)
    return config


def _entry(raw: Any, stage: Stage, index: int, timeout: float, services: Services) -> Entry | None:
    where = f"guardrails.{stage}[{index}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping with at least 'name' and 'type'")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'name' is required")
    where = f"{where} ({name})"
    try:
        return _build(raw, stage, name, where, timeout, services)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None


def _build(
    raw: Mapping[str, Any], stage: Stage, name: str, where: str, timeout: float, services: Services
) -> Entry | None:
    if raw.get("enabled", True) is False:
        return None
    type_name = raw.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise ValueError("'type' is required")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"'priority' must be an integer, got {priority!r}")
    action = raw.get("action")
    if action is not None and action not in ("block", "redact", "replace"):
        raise ValueError(f"'action' must be block, redact or replace, got {action!r}")
    entry_timeout = parse_duration(raw.get("timeout", timeout), "'timeout'")
    options = Options(
        where, name, stage, priority, action,
        {k: v for k, v in raw.items() if k not in _COMMON}, services, entry_timeout,
    )  # fmt: skip
    guardrail = factory_for(type_name)(options)
    unused = options.unused()
    if unused:
        raise ValueError(f"unknown key '{unused[0]}' for type {type_name}")
    status = raw.get("status", 400)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"'status' must be an HTTP error status (400-599), got {status!r}")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError("'message' must be a string")
    return Entry(
        guardrail=guardrail,
        type=type_name,
        timeout=entry_timeout,
        on_error=_choice(raw, "on_error", ("block", "allow")),
        mode=_choice(raw, "mode", ("enforce", "monitor")),
        match=_match(raw.get("match")),
        respond=_choice(raw, "respond", ("error", "completion")),
        status=status,
        message=message,
        stream=_choice(raw, "stream", ("incremental", "buffer")),
    )


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = raw.get(key, allowed[0])
    if value not in allowed:
        raise ValueError(f"'{key}' must be {' or '.join(allowed)}, got {value!r}")
    return str(value)


def _match(raw: Any) -> Match:
    if raw is None:
        return Match()
    if not isinstance(raw, Mapping):
        raise ValueError("'match' must be a mapping of providers, paths and models")
    unknown = sorted(set(raw) - {"providers", "paths", "models"})
    if unknown:
        raise ValueError(f"'match' has an unknown key '{unknown[0]}'")
    lists = {}
    for key in ("providers", "paths", "models"):
        value = raw.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"'match.{key}' must be a list of glob patterns")
        lists[key] = tuple(value)
    return Match(**lists)


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: expected a positive integer, got {value!r}")
    return value
