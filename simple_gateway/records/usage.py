"""Token usage, assistant text and model name, read from provider responses by their shape.

Nothing here asks which provider answered. A `BodyShape` recognises one kind of
JSON response (an OpenAI chat completion, an Anthropic message, ...) and a
`StreamShape` one family of stream events; both are found by trying the shapes
registered in a `ShapeRegistry`. An OpenAI-compatible server (vLLM, Ollama,
LM Studio) is therefore covered by the OpenAI shapes, and a new shape is one
`register_body` / `register_stream` call, the same one the built-ins use.

Counts are normalised: `input_tokens` is every input token including cached
ones (OpenAI already counts them that way; Anthropic reports cache reads and
writes apart, so they are added back), `cached_tokens` is cache reads only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from simple_gateway.proxy.sse import SSEEvent

logger = logging.getLogger(__name__)

JSON = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token counts of one exchange; None where the provider did not say."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    source: str  # where the counts came from, e.g. "response.body", "stream.final_event"


@dataclass(frozen=True)
class StreamSummary:
    usage: Usage | None
    text: str
    model: str | None


@dataclass
class StreamState:
    """What stream shapes accumulate while events go by; `scratch` is theirs to share."""

    usage: Usage | None = None
    text: list[str] = field(default_factory=list)
    model: str | None = None
    scratch: dict[str, Any] = field(default_factory=dict)


class BodyShape(Protocol):
    """One kind of complete (non-stream) JSON response."""

    def matches(self, obj: JSON) -> bool: ...

    def usage(self, obj: JSON) -> Usage | None: ...

    def text(self, obj: JSON) -> str | None: ...


class StreamShape(Protocol):
    """One family of stream events, folded into a `StreamState`."""

    def matches(self, event: SSEEvent, obj: JSON) -> bool: ...

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None: ...


class ShapeRegistry:
    """The shapes tried, in order; the first that matches and answers wins.

    A shape that raises is logged and skipped, so one bad parser cannot hide
    what the others would have found.
    """

    def __init__(self) -> None:
        self._body: list[BodyShape] = []
        self._stream: list[StreamShape] = []

    def register_body(self, shape: BodyShape, first: bool = False) -> None:
        """Add a shape; `first` puts it ahead of those already registered."""
        self._body.insert(0 if first else len(self._body), shape)

    def register_stream(self, shape: StreamShape, first: bool = False) -> None:
        self._stream.insert(0 if first else len(self._stream), shape)

    def usage(self, obj: Any) -> Usage | None:
        return self._first_body(obj, "usage")

    def text(self, obj: Any) -> str | None:
        return self._first_body(obj, "text")

    def _first_body(self, obj: Any, what: str) -> Any:
        if not isinstance(obj, Mapping):
            return None
        for shape in self._body:
            try:
                if shape.matches(obj):
                    found = getattr(shape, what)(obj)
                    if found is not None:
                        return found
            except Exception:
                logger.warning("%s shape %r failed", what, shape, exc_info=True)
        return None

    def summarise(self, events: Iterable[SSEEvent]) -> StreamSummary:
        state = StreamState()
        failed: set[int] = set()
        for event in events:
            obj = _event_json(event)
            if obj is None:
                continue
            for shape in self._stream:
                try:
                    if shape.matches(event, obj):
                        shape.apply(event, obj, state)
                        break
                except Exception:
                    if id(shape) not in failed:  # once per stream, not once per event
                        failed.add(id(shape))
                        logger.warning("stream shape %r failed", shape, exc_info=True)
        return StreamSummary(usage=state.usage, text="".join(state.text), model=state.model)


def _event_json(event: SSEEvent) -> JSON | None:
    data = event.data.lstrip()
    if not data.startswith("{"):
        return None  # "[DONE]", keep-alives, plain text
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _usage_or_none(usage: Usage) -> Usage | None:
    if (
        usage.input_tokens is None
        and usage.output_tokens is None
        and usage.cached_tokens is None
        and usage.reasoning_tokens is None
    ):
        return None
    return usage


def openai_usage(raw: Any, source: str) -> Usage | None:
    """Chat/completions (`prompt_tokens`) and Responses (`input_tokens`) usage alike."""
    u = _dict(raw)
    inp = u.get("prompt_tokens", u.get("input_tokens"))
    out = u.get("completion_tokens", u.get("output_tokens"))
    in_details = _dict(u.get("prompt_tokens_details") or u.get("input_tokens_details"))
    out_details = _dict(u.get("completion_tokens_details") or u.get("output_tokens_details"))
    return _usage_or_none(
        Usage(
            input_tokens=_int(inp),
            output_tokens=_int(out),
            cached_tokens=_int(in_details.get("cached_tokens")),
            reasoning_tokens=_int(out_details.get("reasoning_tokens")),
            source=source,
        )
    )


def anthropic_usage(raw: Any, source: str) -> Usage | None:
    """Anthropic counts cache reads and writes outside `input_tokens`; add them back."""
    u = _dict(raw)
    parts = [
        _int(u.get(k))
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    ]
    known = [p for p in parts if p is not None]
    return _usage_or_none(
        Usage(
            input_tokens=sum(known) if known else None,
            output_tokens=_int(u.get("output_tokens")),
            cached_tokens=parts[1],
            source=source,
        )
    )


def _is_anthropic_usage(raw: Any) -> bool:
    u = _dict(raw)
    return "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u


def _content_text(content: Any) -> str | None:
    """A message's content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p["text"]
            for p in content
            if isinstance(p, dict)
            and p.get("type") in ("text", "output_text")
            and isinstance(p.get("text"), str)
        ]
        return "".join(texts) if texts else None
    return None


def _first_choice(obj: JSON) -> JSON:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices:
        return _dict(choices[0])
    return {}


class ChatCompletion:
    """OpenAI `chat.completion`, and any server that answers with `choices[].message`."""

    def matches(self, obj: JSON) -> bool:
        return obj.get("object") == "chat.completion" or "message" in _first_choice(obj)

    def usage(self, obj: JSON) -> Usage | None:
        return openai_usage(obj.get("usage"), "response.body")

    def text(self, obj: JSON) -> str | None:
        return _content_text(_dict(_first_choice(obj).get("message")).get("content"))


class TextCompletion:
    """OpenAI legacy `text_completion`: `choices[].text`."""

    def matches(self, obj: JSON) -> bool:
        return obj.get("object") == "text_completion" or "text" in _first_choice(obj)

    def usage(self, obj: JSON) -> Usage | None:
        return openai_usage(obj.get("usage"), "response.body")

    def text(self, obj: JSON) -> str | None:
        text = _first_choice(obj).get("text")
        return text if isinstance(text, str) else None


class ResponsesObject:
    """OpenAI Responses API `response`: text is the `output_text` parts of message items."""

    def matches(self, obj: JSON) -> bool:
        return obj.get("object") == "response"

    def usage(self, obj: JSON) -> Usage | None:
        return openai_usage(obj.get("usage"), "response.body")

    def text(self, obj: JSON) -> str | None:
        return responses_output_text(obj)


def responses_output_text(obj: JSON) -> str | None:
    output = obj.get("output")
    if not isinstance(output, list):
        return None
    texts = [
        t
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        for t in [_content_text(item.get("content"))]
        if t is not None
    ]
    return "".join(texts) if texts else None


class EmbeddingList:
    """Embeddings: `object: "list"` with prompt tokens only; nothing is generated."""

    def matches(self, obj: JSON) -> bool:
        return obj.get("object") == "list" and "prompt_tokens" in _dict(obj.get("usage"))

    def usage(self, obj: JSON) -> Usage | None:
        usage = openai_usage(obj.get("usage"), "response.body")
        if usage is not None and usage.output_tokens is None:
            usage = Usage(input_tokens=usage.input_tokens, output_tokens=0, source=usage.source)
        return usage

    def text(self, obj: JSON) -> str | None:
        return None


class AnthropicMessage:
    """Anthropic `message`: text is the concatenated `text` content blocks."""

    def matches(self, obj: JSON) -> bool:
        return obj.get("type") == "message"

    def usage(self, obj: JSON) -> Usage | None:
        return anthropic_usage(obj.get("usage"), "response.body")

    def text(self, obj: JSON) -> str | None:
        return _content_text(obj.get("content"))


class AnyUsage:
    """Last resort: any object with a `usage` mapping (images, audio, unknown endpoints)."""

    def matches(self, obj: JSON) -> bool:
        return isinstance(obj.get("usage"), dict)

    def usage(self, obj: JSON) -> Usage | None:
        raw = obj.get("usage")
        if _is_anthropic_usage(raw):
            return anthropic_usage(raw, "response.body")
        return openai_usage(raw, "response.body")

    def text(self, obj: JSON) -> str | None:
        return None


class ChatChunks:
    """OpenAI chat/completions stream chunks; usage arrives in a final chunk when asked for."""

    def matches(self, event: SSEEvent, obj: JSON) -> bool:
        kind = obj.get("object")
        return kind in ("chat.completion.chunk", "text_completion") or (
            kind is None and isinstance(obj.get("choices"), list)
        )

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None:
        if state.model is None and isinstance(obj.get("model"), str):
            state.model = obj["model"]
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            piece = _dict(choice.get("delta")).get("content", choice.get("text"))
            if isinstance(piece, str):
                state.text.append(piece)
        if obj.get("usage"):
            usage = openai_usage(obj["usage"], "stream.final_event")
            state.usage = usage or state.usage


class ResponsesEvents:
    """OpenAI Responses API stream: text deltas, and the full response in the terminal event."""

    _TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def matches(self, event: SSEEvent, obj: JSON) -> bool:
        kind = obj.get("type")
        return isinstance(kind, str) and kind.startswith("response.")

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None:
        kind = obj["type"]
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            state.text.append(obj["delta"])
            return
        response = _dict(obj.get("response"))
        if isinstance(response.get("model"), str) and (
            state.model is None or kind in self._TERMINAL
        ):
            state.model = response["model"]
        if kind in self._TERMINAL:
            usage = openai_usage(response.get("usage"), "stream.final_event")
            if usage is not None:
                state.usage = usage


class AnthropicEvents:
    """Anthropic stream: input and cache counts at `message_start`, final output in `message_delta`.

    `message_delta` counts are cumulative and may repeat the input ones, so the raw
    counts are merged before normalising.
    """

    _KINDS = ("message_start", "message_delta", "content_block_delta")

    def matches(self, event: SSEEvent, obj: JSON) -> bool:
        return obj.get("type") in self._KINDS

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None:
        kind = obj["type"]
        if kind == "content_block_delta":
            delta = _dict(obj.get("delta"))
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                state.text.append(delta["text"])
            return
        raw: dict[str, Any] = state.scratch.setdefault("anthropic_usage", {})
        if kind == "message_start":
            message = _dict(obj.get("message"))
            if isinstance(message.get("model"), str):
                state.model = message["model"]
            raw.update(_dict(message.get("usage")))
            source = "stream.message_start"
        else:
            raw.update({k: v for k, v in _dict(obj.get("usage")).items() if v is not None})
            source = "stream.final_event"
        usage = anthropic_usage(raw, source)
        if usage is not None:
            state.usage = usage


def register_builtins(registry: ShapeRegistry) -> None:
    for body in (
        ChatCompletion(),
        TextCompletion(),
        ResponsesObject(),
        EmbeddingList(),
        AnthropicMessage(),
        AnyUsage(),
    ):
        registry.register_body(body)
    for stream in (ChatChunks(), ResponsesEvents(), AnthropicEvents()):
        registry.register_stream(stream)


@cache
def default_registry() -> ShapeRegistry:
    """The registry the module functions use; register extra shapes on it."""
    registry = ShapeRegistry()
    register_builtins(registry)
    return registry


def usage_from_json(obj: Any, registry: ShapeRegistry | None = None) -> Usage | None:
    return (registry or default_registry()).usage(obj)


def text_from_json(obj: Any, registry: ShapeRegistry | None = None) -> str | None:
    """The assistant text of a complete response, None when it has none."""
    return (registry or default_registry()).text(obj)


def model_from_json(obj: Any) -> str | None:
    """The `model` a response names; every supported shape keeps it at the top level."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), str) and obj["model"]:
        return obj["model"]
    return None


def summarise_stream(
    events: Iterable[SSEEvent], registry: ShapeRegistry | None = None
) -> StreamSummary:
    return (registry or default_registry()).summarise(events)
