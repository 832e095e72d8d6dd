"""The registry of guardrail types: built-ins and a user's own classes share one door.

A type is a factory taking the entry's `Options`. `type: mypackage.checks:MyCheck` in the
configuration imports that class and registers it under that name on first use, so a
custom check is looked up exactly like a built-in one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from simple_gateway.guardrails.base import Guardrail, Options

GuardrailFactory = Callable[[Options], Guardrail]
_TYPES: dict[str, GuardrailFactory] = {}


def register_guardrail_type(type_name: str, factory: GuardrailFactory) -> None:
    """Make a guardrail type available to configuration (`type: <type_name>`)."""
    _TYPES[type_name] = factory


def guardrail_types() -> list[str]:
    return sorted(_TYPES)


def factory_for(type_name: str) -> GuardrailFactory:
    factory = _TYPES.get(type_name)
    if factory is not None:
        return factory
    if ":" not in type_name:
        raise ValueError(
            f"unknown type '{type_name}' (known: {', '.join(guardrail_types())}, "
            "or module.path:ClassName)"
        )
    module_name, _, attribute = type_name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"type '{type_name}': cannot import {module_name}: {exc}") from None
    loaded = getattr(module, attribute, None)
    if not callable(loaded):
        raise ValueError(f"type '{type_name}': {module_name} has no class {attribute}")
    register_guardrail_type(type_name, loaded)
    return loaded  # type: ignore[no-any-return]
