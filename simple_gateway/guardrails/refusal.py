"""What a refused exchange gets: the route's error shape, or a well-formed refusal reply.

An error answer has the status of the entry (400 by default; 503 with code
`guardrail_unavailable` when a guardrail could not give a verdict under `on_error: block`)
and the header `x-guardrail-blocked: <name>`. With `respond: completion` a block is
answered instead with a reply of the route's own shape carrying the message, streamed
when the client asked for a stream; routes without a reply shape (embeddings) keep the
error.
"""

from __future__ import annotations

from dataclasses import dataclass

from simple_gateway.guardrails.base import Stage
from simple_gateway.guardrails.config import Entry
from simple_gateway.guardrails.formats import RouteFormat
from simple_gateway.guardrails.pipeline import StageResult

BLOCKED_HEADER = "x-guardrail-blocked"


@dataclass
class Refusal:
    guardrail: str
    message: str
    status: int
    unavailable: bool
    completion: bool  # answer with a reply of the route's shape rather than an error


@dataclass
class Answer:
    """A complete response: status line, headers, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def refusal_for(result: StageResult, stage: Stage) -> Refusal:
    entry = result.stopped_by
    assert entry is not None
    return Refusal(
        guardrail=entry.name,
        message=_message(entry, result, stage),
        status=503 if result.unavailable else entry.status,
        unavailable=result.unavailable,
        completion=entry.respond == "completion" and not result.unavailable,
    )


def _message(entry: Entry, result: StageResult, stage: Stage) -> str:
    if result.unavailable:
        return result.reason or f"guardrail '{entry.name}' is unavailable"
    if entry.message:
        return entry.message
    what = "request" if stage == Stage.INPUT else "reply"
    reason = f": {result.reason}" if result.reason else ""
    return f"The {what} was blocked by the guardrail '{entry.name}'{reason}"


def render(refusal: Refusal, route_format: RouteFormat, model: str, stream: bool) -> Answer:
    headers = [(BLOCKED_HEADER, refusal.guardrail)]
    if refusal.completion:
        if stream:
            body = route_format.completion_stream(refusal.message, model)
            content_type = "text/event-stream; charset=utf-8"
        else:
            body = route_format.completion(refusal.message, model)
            content_type = "application/json"
        if body is not None:
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            return Answer(200, headers, body)
    body = route_format.error_body(refusal)
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return Answer(refusal.status, headers, body)
