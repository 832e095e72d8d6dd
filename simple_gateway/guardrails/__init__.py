"""Guardrails: checks on the input and output of every route, streams included."""

from simple_gateway.guardrails.base import (
    Guardrail,
    Options,
    Outcome,
    Stage,
    Subject,
    Verdict,
)
from simple_gateway.guardrails.registry import register_guardrail_type
from simple_gateway.guardrails.service import ExchangeGuard, Guardrails, build_config

__all__ = [
    "ExchangeGuard",
    "Guardrail",
    "Guardrails",
    "Options",
    "Outcome",
    "Stage",
    "Subject",
    "Verdict",
    "build_config",
    "register_guardrail_type",
]
