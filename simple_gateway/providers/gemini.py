"""Google Gemini: keys in `x-goog-api-key` or `key=`, the model in the path, its own errors.

Native routes pass through unchanged: `/gemini/v1beta/models/<model>:generateContent`,
`...:streamGenerateContent?alt=sse`, and the same under `/v1`. The gateway's own key
goes in the `x-goog-api-key` header, never in the URL. Usage comes from
`usageMetadata` (see `GeminiResponse` and `GeminiChunks`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from simple_gateway.errors import GatewayError
from simple_gateway.providers.base import UpstreamRequest
from simple_gateway.providers.http import HTTPProvider
from simple_gateway.proxy.sse import SSEEvent
from simple_gateway.records.usage import JSON, StreamState, Usage

_MODEL_IN_PATH = re.compile(r"/models/([^/:?]+)")

# https://ai.google.dev/gemini-api/docs/troubleshooting (google.rpc.Code names)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiProvider(HTTPProvider):
    """generativelanguage.googleapis.com."""

    key_headers = ("x-goog-api-key", "authorization")
    key_query = ("key",)
    auth_header = "x-goog-api-key"
    auth_scheme = ""

    def prepare(self, request: UpstreamRequest) -> None:
        super().prepare(request)
        match = _MODEL_IN_PATH.search(request.path.partition("?")[0])
        if match:
            request.model = match.group(1)

    def error_body(self, error: GatewayError) -> bytes:
        status = _STATUS_NAMES.get(error.status, "UNKNOWN")
        payload = {"error": {"code": error.status, "message": error.message, "status": status}}
        return json.dumps(payload).encode()


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def gemini_usage(raw: Any, source: str) -> Usage | None:
    """`usageMetadata`: thinking tokens are output tokens, as OpenAI counts reasoning."""
    meta = _dict(raw)
    prompt = _int(meta.get("promptTokenCount"))
    candidates = _int(meta.get("candidatesTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    output = None
    if candidates is not None or thoughts is not None:
        output = (candidates or 0) + (thoughts or 0)
    if prompt is None and output is None:
        return None
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cached_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        source=source,
    )


def candidate_text(obj: JSON) -> str | None:
    candidates = obj.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return None
    parts = _dict(_dict(candidates[0]).get("content")).get("parts")
    if not isinstance(parts, list):
        return None
    texts = [
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    ]
    return "".join(texts) if texts else None


class GeminiResponse:
    """A `GenerateContentResponse`: candidates and `usageMetadata`."""

    def matches(self, obj: JSON) -> bool:
        return "usageMetadata" in obj or isinstance(obj.get("candidates"), list)

    def usage(self, obj: JSON) -> Usage | None:
        return gemini_usage(obj.get("usageMetadata"), "response.body")

    def text(self, obj: JSON) -> str | None:
        return candidate_text(obj)


class GeminiChunks:
    """`streamGenerateContent?alt=sse`: each event a partial response; usage is cumulative."""

    def matches(self, event: SSEEvent, obj: JSON) -> bool:
        return "usageMetadata" in obj or isinstance(obj.get("candidates"), list)

    def apply(self, event: SSEEvent, obj: JSON, state: StreamState) -> None:
        text = candidate_text(obj)
        if text:
            state.text.append(text)
        if state.model is None and isinstance(obj.get("modelVersion"), str):
            state.model = obj["modelVersion"]
        usage = gemini_usage(obj.get("usageMetadata"), "stream.final_event")
        if usage is not None:
            state.usage = usage
