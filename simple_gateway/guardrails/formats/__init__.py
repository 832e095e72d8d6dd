"""Route formats: where the checkable text of a body lives, and how refusals look there.

A format knows one API shape (OpenAI chat, Responses, Anthropic messages, ...): the slots
holding text in a request or a reply (so a redaction can be written back in place), the
text deltas of its stream, which stream events end it, and the refusal shapes of its
family. Formats are registered by the path suffix of their route; the longest suffix wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from simple_gateway.proxy.sse import SSEEvent


@dataclass
class Slot:
    """One text value inside a parsed JSON body, readable and writable in place."""

    parent: Any
    key: Any

    def get(self) -> str:
        return str(self.parent[self.key])

    def set(self, text: str) -> None:
        self.parent[self.key] = text


class Refusal(Protocol):
    """What the renderers need to know about a refusal."""

    guardrail: str
    message: str
    status: int
    unavailable: bool


class RouteFormat(Protocol):
    family: str  # "openai" | "anthropic": the error shapes of the route

    def request_slots(self, body: Mapping[str, Any]) -> list[Slot]: ...

    def response_slots(self, body: Mapping[str, Any]) -> list[Slot]: ...

    def stream_delta(self, event: SSEEvent, data: Any) -> str | None:
        """The reply text an event adds (`data` is its parsed JSON, or None)."""
        ...

    def ends_stream(self, event: SSEEvent, data: Any) -> bool:
        """True for the events that complete a reply (held until the final check passed)."""
        ...

    def error_body(self, refusal: Refusal) -> bytes: ...

    def stream_error(self, refusal: Refusal) -> bytes: ...

    def completion(self, text: str, model: str) -> bytes | None:
        """A well-formed reply carrying `text`; None when the route has no such shape."""
        ...

    def completion_stream(self, text: str, model: str) -> bytes | None: ...


_FORMATS: dict[str, RouteFormat] = {}
_FALLBACK: list[RouteFormat] = []


def register_format(path_suffix: str, route_format: RouteFormat) -> None:
    _FORMATS[path_suffix] = route_format


def register_fallback(route_format: RouteFormat) -> None:
    """The format of JSON routes no suffix names (top-level prompt / input)."""
    _FALLBACK[:] = [route_format]


def format_for(path: str) -> RouteFormat | None:
    path = path.split("?", 1)[0].rstrip("/")
    best = ""
    for suffix in _FORMATS:
        if path.endswith(suffix) and len(suffix) > len(best):
            best = suffix
    if best:
        return _FORMATS[best]
    return _FALLBACK[0] if _FALLBACK else None


def register_builtin_formats() -> None:
    from simple_gateway.guardrails.formats import anthropic, openai

    openai.register()
    anthropic.register()


def text_slots(container: Any, key: Any, text_types: tuple[str, ...]) -> list[Slot]:
    """Slots of a value that is a string, or a list of strings and typed text parts."""
    value = container.get(key) if isinstance(container, Mapping) else None
    if isinstance(value, str):
        return [Slot(container, key)]
    slots: list[Slot] = []
    if isinstance(value, list):
        for index, part in enumerate(value):
            if isinstance(part, str):
                slots.append(Slot(value, index))
            elif (
                isinstance(part, dict)
                and part.get("type") in text_types
                and isinstance(part.get("text"), str)
            ):
                slots.append(Slot(part, "text"))
    return slots
