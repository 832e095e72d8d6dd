"""OpenAI chat completion request -> Anthropic Messages request."""

from __future__ import annotations

from typing import Any

from simple_gateway.translate.base import (
    JSON,
    UnsupportedField,
    invalid,
    parse_data_uri,
    reject_set,
    reject_unknown,
    text_of,
    tool_arguments,
)

ANTHROPIC_VERSION = "2023-06-01"
_TYPE = "anthropic"

# Mapped below, or accepted when neutral (checked by reject_set).
_KNOWN = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
        "user", "n", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
        "logit_bias", "seed", "response_format", "audio", "modalities", "prediction",
        "store", "metadata", "service_tier", "reasoning_effort", "web_search_options",
    }
)  # fmt: skip
_REFUSED = {
    "logprobs": "Anthropic returns no log probabilities",
    "top_logprobs": "Anthropic returns no log probabilities",
    "presence_penalty": "Anthropic has no presence penalty",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "logit_bias": "Anthropic has no logit bias",
    "seed": "Anthropic has no seed",
    "audio": "Anthropic produces no audio",
    "prediction": "Anthropic has no predicted outputs",
    "store": "Anthropic does not store completions",
    "metadata": "Anthropic's metadata takes only a user id (use 'user')",
    "service_tier": "Anthropic's service tiers differ",
    "reasoning_effort": "use a model served in Anthropic's own format for extended thinking",
    "web_search_options": "Anthropic's web search is a server tool of its own",
}


def to_anthropic(body: JSON, model: str, max_tokens: int) -> JSON:
    reject_unknown(body, _KNOWN, _TYPE)
    reject_set(body, _REFUSED, _TYPE)
    if body.get("n") not in (None, 1):
        raise UnsupportedField("n", _TYPE, "Anthropic returns one choice per request")
    _check_response_format(body.get("response_format"))
    modalities = body.get("modalities")
    if modalities not in (None, ["text"]):
        raise UnsupportedField("modalities", _TYPE, "Anthropic answers in text only")
    system, messages = _messages(body.get("messages"))
    out: JSON = {"model": model, "messages": messages}
    if system:
        out["system"] = system
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    out["max_tokens"] = limit if limit is not None else max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if isinstance(out.get("temperature"), (int, float)) and out["temperature"] > 1:
        raise UnsupportedField("temperature", _TYPE, "Anthropic accepts 0 to 1")
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(body["tools"])]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _check_response_format(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or value.get("type") != "text":
        raise UnsupportedField(
            "response_format", _TYPE, "Anthropic has no JSON mode; describe the format instead"
        )


def _messages(raw: Any) -> tuple[list[JSON], list[JSON]]:
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "expected a non-empty list of messages")
    system: list[JSON] = []
    messages: list[JSON] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(where, "expected an object")
        if message.get("name"):
            raise UnsupportedField(f"{where}.name", _TYPE, "Anthropic messages have no names")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"type": "text", "text": text_of(message.get("content"), where)})
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"{where}.content")
            _append(messages, "user", blocks)
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": str(message.get("tool_call_id") or ""),
                "content": _tool_result_content(message.get("content"), f"{where}.content"),
            }
            _append(messages, "user", [result])
        else:
            raise UnsupportedField(f"{where}.role", _TYPE, f"role '{role}' has no counterpart")
    return system, messages


def _append(messages: list[JSON], role: str, blocks: list[JSON]) -> None:
    """Consecutive turns of one role become one turn (tool results follow their calls)."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _user_blocks(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    blocks = []
    for index, part in enumerate(content):
        part_where = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), part_where))
        else:
            raise UnsupportedField(
                f"{part_where}.type", _TYPE, f"content parts of type '{kind}' have no counterpart"
            )
    return blocks


def _image(image: Any, where: str) -> JSON:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(f"{where}.image_url", "expected an object with a url")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = parse_data_uri(url, f"{where}.image_url.url")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _assistant_blocks(message: JSON, where: str) -> list[JSON]:
    blocks: list[JSON] = []
    text = text_of(message.get("content"), f"{where}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for index, call in enumerate(message.get("tool_calls") or []):
        call_where = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise invalid(call_where, "expected a function tool call")
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": tool_arguments(function.get("arguments"), f"{call_where}.arguments"),
            }
        )
    if message.get("function_call") or message.get("audio"):
        name = "function_call" if message.get("function_call") else "audio"
        raise UnsupportedField(f"{where}.{name}", _TYPE, "use tool_calls")
    return blocks or [{"type": "text", "text": ""}]


def _tool_result_content(content: Any, where: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    return _user_blocks(content, where)


def _tool(tool: Any, index: int) -> JSON:
    where = f"tools[{index}]"
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise UnsupportedField(f"{where}.type", _TYPE, "only function tools have a counterpart")
    if function.get("strict"):
        raise UnsupportedField(f"{where}.function.strict", _TYPE, "no strict schema mode")
    out: JSON = {
        "name": str(function.get("name") or ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    if choice is None:
        out: JSON | None = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": str(choice["function"].get("name") or "")}
    else:
        raise invalid("tool_choice", "expected auto, none, required or a function")
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out
