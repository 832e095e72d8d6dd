"""Wire formats by provider type: how a chat or embeddings call is sent and answered.

A format turns the client's OpenAI-format request into the upstream call for one
deployment and picks the transform that turns the reply back. Types register here the
way provider types register with the provider registry; a type without a format cannot
be the target of a model alias.
"""

from __future__ import annotations

from typing import Protocol

from simple_gateway.translate import (
    anthropic_request,
    anthropic_response,
    gemini_request,
    gemini_response,
)
from simple_gateway.translate.base import (
    JSON,
    BodyTransform,
    Buffered,
    UnsupportedField,
    UpstreamCall,
    dumps,
)

CHAT = "chat"
EMBEDDINGS = "embeddings"


class WireFormat(Protocol):
    name: str

    def request(self, kind: str, body: JSON, model: str, max_tokens: int) -> UpstreamCall:
        """The upstream call for a client request of `kind` (chat or embeddings)."""
        ...

    def response(
        self, kind: str, body: JSON, model: str, status: int, content_type: str
    ) -> BodyTransform | None:
        """The transform of the upstream reply into the client's format; None: verbatim."""
        ...


def _include_usage(body: JSON) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class OpenAIFormat:
    """OpenAI and every OpenAI-compatible server: the body passes with the model rewritten."""

    name = "openai"
    _paths = {CHAT: "/v1/chat/completions", EMBEDDINGS: "/v1/embeddings"}

    def request(self, kind: str, body: JSON, model: str, max_tokens: int) -> UpstreamCall:
        return UpstreamCall(self._paths[kind], dumps({**body, "model": model}), translated=False)

    def response(
        self, kind: str, body: JSON, model: str, status: int, content_type: str
    ) -> BodyTransform | None:
        return None


class AzureFormat(OpenAIFormat):
    """Azure OpenAI: the deployment is named in the path (`api-version` comes from the provider)."""

    name = "azure"

    def request(self, kind: str, body: JSON, model: str, max_tokens: int) -> UpstreamCall:
        endpoint = "chat/completions" if kind == CHAT else "embeddings"
        path = f"/openai/deployments/{model}/{endpoint}"
        return UpstreamCall(path, dumps({**body, "model": model}), translated=False)


class AnthropicFormat:
    name = "anthropic"

    def request(self, kind: str, body: JSON, model: str, max_tokens: int) -> UpstreamCall:
        if kind != CHAT:
            raise UnsupportedField("model", self.name, "Anthropic has no embeddings API")
        payload = anthropic_request.to_anthropic(body, model, max_tokens)
        headers = {"anthropic-version": anthropic_request.ANTHROPIC_VERSION}
        return UpstreamCall("/v1/messages", dumps(payload), headers)

    def response(
        self, kind: str, body: JSON, model: str, status: int, content_type: str
    ) -> BodyTransform | None:
        if status >= 400:
            return Buffered(anthropic_response.error_to_openai(status))
        if content_type.startswith("text/event-stream"):
            return anthropic_response.StreamToChunks(_include_usage(body))
        return Buffered(anthropic_response.message_to_completion)


class GeminiFormat:
    name = "gemini"

    def request(self, kind: str, body: JSON, model: str, max_tokens: int) -> UpstreamCall:
        if kind == EMBEDDINGS:
            payload = gemini_request.to_gemini_embeddings(body, model)
            return UpstreamCall(f"/v1beta/models/{model}:batchEmbedContents", dumps(payload))
        if body.get("stream") and body.get("n") not in (None, 1):
            raise UnsupportedField("n", self.name, "a streamed reply carries one candidate")
        payload = gemini_request.to_gemini(body, max_tokens)
        if body.get("stream"):
            return UpstreamCall(
                f"/v1beta/models/{model}:streamGenerateContent?alt=sse", dumps(payload)
            )
        return UpstreamCall(f"/v1beta/models/{model}:generateContent", dumps(payload))

    def response(
        self, kind: str, body: JSON, model: str, status: int, content_type: str
    ) -> BodyTransform | None:
        if status >= 400:
            return Buffered(gemini_response.error_to_openai(status))
        if kind == EMBEDDINGS:
            as_base64 = body.get("encoding_format") == "base64"
            return Buffered(gemini_response.embeddings_to_openai(model, as_base64))
        if content_type.startswith("text/event-stream"):
            return gemini_response.StreamToChunks(model, _include_usage(body))
        return Buffered(gemini_response.response_to_completion(model))


_FORMATS: dict[str, WireFormat] = {}


def register_format(provider_type: str, wire_format: WireFormat) -> None:
    """Let deployments of a provider type be reached through model aliases."""
    _FORMATS[provider_type] = wire_format


def format_for(provider_type: str) -> WireFormat | None:
    return _FORMATS.get(provider_type)


def register_builtin_formats() -> None:
    openai = OpenAIFormat()
    for provider_type in ("openai", "compatible"):
        register_format(provider_type, openai)
    register_format("azure", AzureFormat())
    register_format("anthropic", AnthropicFormat())
    register_format("gemini", GeminiFormat())
