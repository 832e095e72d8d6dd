"""OpenAI chat completion and embeddings requests -> Gemini generateContent / embedContent."""

from __future__ import annotations

import mimetypes
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

_TYPE = "gemini"
_KNOWN = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "stream", "stream_options", "tools", "tool_choice", "n", "seed",
        "presence_penalty", "frequency_penalty", "response_format", "logprobs",
        "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "store",
        "metadata", "service_tier", "user", "parallel_tool_calls", "reasoning_effort",
        "web_search_options",
    }
)  # fmt: skip
_REFUSED = {
    "logprobs": "the gateway does not map Gemini's log probabilities",
    "top_logprobs": "the gateway does not map Gemini's log probabilities",
    "logit_bias": "Gemini has no logit bias",
    "audio": "audio output is not mapped",
    "prediction": "Gemini has no predicted outputs",
    "store": "Gemini does not store completions",
    "metadata": "Gemini has no request metadata",
    "service_tier": "Gemini's service tiers differ",
    "user": "Gemini has no end-user field",
    "reasoning_effort": "use a model served in Gemini's own format for thinking settings",
    "web_search_options": "Gemini's search grounding is a tool of its own",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def to_gemini(body: JSON, max_tokens: int) -> JSON:
    reject_unknown(body, _KNOWN, _TYPE)
    reject_set(body, _REFUSED, _TYPE)
    if body.get("modalities") not in (None, ["text"]):
        raise UnsupportedField("modalities", _TYPE, "only text output is mapped")
    if body.get("parallel_tool_calls") is False:
        raise UnsupportedField("parallel_tool_calls", _TYPE, "Gemini cannot forbid them")
    system, contents = _contents(body.get("messages"))
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    config: JSON = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    config["maxOutputTokens"] = limit if limit is not None else max_tokens
    simple = {
        "temperature": "temperature",
        "top_p": "topP",
        "n": "candidateCount",
        "seed": "seed",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
    }
    for name, gemini_name in simple.items():
        if body.get(name) is not None:
            config[gemini_name] = body[name]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(_response_format(body.get("response_format")))
    out["generationConfig"] = config
    if body.get("tools"):
        declarations = [_declaration(tool, i) for i, tool in enumerate(body["tools"])]
        out["tools"] = [{"functionDeclarations": declarations}]
    choice = _tool_config(body.get("tool_choice"))
    if choice is not None:
        out["toolConfig"] = choice
    return out


def to_gemini_embeddings(body: JSON, model: str) -> JSON:
    reject_unknown(
        body, frozenset({"model", "input", "encoding_format", "dimensions", "user"}), _TYPE
    )
    reject_set(body, {"user": "Gemini has no end-user field"}, _TYPE)
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise UnsupportedField("input", _TYPE, "Gemini embeds text: a string or a list of strings")
    requests = []
    for text in texts:
        request: JSON = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if body.get("dimensions"):
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    return {"requests": requests}


def _contents(raw: Any) -> tuple[list[str], list[JSON]]:
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "expected a non-empty list of messages")
    system: list[str] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, for tool results
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(where, "expected an object")
        if message.get("name"):
            raise UnsupportedField(f"{where}.name", _TYPE, "Gemini contents have no names")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content"), f"{where}.content"))
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, where, call_names))
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            if call_id not in call_names:
                raise invalid(f"{where}.tool_call_id", "names no earlier assistant tool call")
            result = message.get("content")
            text = text_of(result, f"{where}.content")
            response = {"name": call_names[call_id], "response": {"content": text}}
            _append(contents, "user", [{"functionResponse": response}])
        else:
            raise UnsupportedField(f"{where}.role", _TYPE, f"role '{role}' has no counterpart")
    return system, contents


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _user_parts(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts")
    parts = []
    for index, part in enumerate(content):
        part_where = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_image(part.get("image_url"), part_where))
        elif kind == "input_audio":
            parts.append(_audio(part.get("input_audio"), part_where))
        else:
            raise UnsupportedField(
                f"{part_where}.type", _TYPE, f"content parts of type '{kind}' have no counterpart"
            )
    return parts


def _image(image: Any, where: str) -> JSON:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(f"{where}.image_url", "expected an object with a url")
    if url.startswith(("http://", "https://")):
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    mime, data = parse_data_uri(url, f"{where}.image_url.url")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _audio(audio: Any, where: str) -> JSON:
    if not isinstance(audio, dict) or audio.get("format") not in _AUDIO_TYPES:
        raise invalid(f"{where}.input_audio", "expected {data, format: wav|mp3}")
    return {"inlineData": {"mimeType": _AUDIO_TYPES[audio["format"]], "data": audio.get("data")}}


def _model_parts(message: JSON, where: str, call_names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    text = text_of(message.get("content"), f"{where}.content")
    if text:
        parts.append({"text": text})
    for index, call in enumerate(message.get("tool_calls") or []):
        call_where = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise invalid(call_where, "expected a function tool call")
        name = str(function.get("name") or "")
        call_names[str(call.get("id") or "")] = name
        args = tool_arguments(function.get("arguments"), f"{call_where}.arguments")
        parts.append({"functionCall": {"name": name, "args": args}})
    if message.get("function_call") or message.get("audio"):
        name = "function_call" if message.get("function_call") else "audio"
        raise UnsupportedField(f"{where}.{name}", _TYPE, "use tool_calls")
    return parts or [{"text": ""}]


def _response_format(value: Any) -> JSON:
    if value is None or (isinstance(value, dict) and value.get("type") == "text"):
        return {}
    if isinstance(value, dict) and value.get("type") == "json_object":
        return {"responseMimeType": "application/json"}
    if isinstance(value, dict) and value.get("type") == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise invalid("response_format", "expected text, json_object or json_schema")


def _declaration(tool: Any, index: int) -> JSON:
    where = f"tools[{index}]"
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise UnsupportedField(f"{where}.type", _TYPE, "only function tools have a counterpart")
    if function.get("strict"):
        raise UnsupportedField(f"{where}.function.strict", _TYPE, "no strict schema mode")
    out: JSON = {"name": str(function.get("name") or "")}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_config(choice: Any) -> JSON | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = str(choice["function"].get("name") or "")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise invalid("tool_choice", "expected auto, none, required or a function")
