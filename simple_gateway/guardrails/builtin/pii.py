"""`pii`: e-mail addresses, phone numbers, card numbers (Luhn), IBANs (mod 97), US SSNs.

Block, or redact each finding with its placeholder (`<EMAIL>`, `<PHONE>`, ...). Numbers
are checked (a card number must pass Luhn, an IBAN its checksum) so that order numbers and
timestamps are not taken for personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from simple_gateway.guardrails.base import Options, Outcome, Subject, Verdict, action_of


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in _digits(number)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _phone_valid(text: str) -> bool:
    return 9 <= len(_digits(text)) <= 15


_DIGIT = re.compile(r"\d")
_IBAN_START = re.compile(r"[A-Z]{2}\d\d")


def _has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None


@dataclass(frozen=True)
class Entity:
    placeholder: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = lambda _text: True
    # A cheap test that must pass for the pattern to match at all (most text has no PII).
    maybe: Callable[[str], bool] = lambda _text: True


# Order matters when redacting: long numbers first, so a card is not taken for a phone.
ENTITIES: dict[str, Entity] = {
    "credit_card": Entity(
        "<CREDIT_CARD>",
        re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
        luhn_valid,
        _has_digit,
    ),
    "iban": Entity(
        "<IBAN>",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        iban_valid,
        lambda text: _IBAN_START.search(text) is not None,
    ),
    "ssn": Entity(
        "<SSN>",
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
        maybe=lambda text: "-" in text and _has_digit(text),
    ),
    "email": Entity(
        "<EMAIL>",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        maybe=lambda text: "@" in text,
    ),
    "phone": Entity(
        "<PHONE>",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\w)"
        ),
        _phone_valid,
        _has_digit,
    ),
}  # fmt: skip


class PII:
    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        self.action = action_of(options, ("block", "redact"))
        names = options.string_list("entities") or list(ENTITIES)
        unknown = [n for n in names if n not in ENTITIES]
        if unknown:
            raise ValueError(f"unknown entity '{unknown[0]}' (known: {', '.join(ENTITIES)})")
        self.entities = [(n, ENTITIES[n]) for n in ENTITIES if n in names]

    def check(self, subject: Subject) -> Verdict:
        found: list[str] = []
        parts = []
        for part in subject.parts:
            for name, entity in self.entities:
                if entity.maybe(part):
                    part = entity.pattern.sub(_replacer(entity, name, found), part)
            parts.append(part)
        if not found:
            return Verdict.passed()
        reason = "found " + ", ".join(sorted(set(found)))
        if self.action == "block":
            return Verdict.blocked(reason)
        return Verdict(Outcome.REDACT, reason, parts=tuple(parts))


def _replacer(entity: Entity, name: str, found: list[str]) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if not entity.valid(match.group(0)):
            return match.group(0)
        found.append(name)
        return entity.placeholder

    return replace
