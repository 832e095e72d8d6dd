"""Anthropic: keys in `x-api-key`, an `anthropic-version` on every request, its own errors."""

from __future__ import annotations

import json
from typing import ClassVar

from simple_gateway.errors import GatewayError
from simple_gateway.providers.http import HTTPProvider
from simple_gateway.proxy.transport import Network
from simple_gateway.settings import ProviderConfig

DEFAULT_VERSION = "2023-06-01"

# https://docs.anthropic.com/en/api/errors
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicProvider(HTTPProvider):
    """api.anthropic.com: `x-api-key` (or an OAuth Bearer token) and `anthropic-version`."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"anthropic_version"})
    key_headers = ("x-api-key", "authorization")
    auth_header = "x-api-key"
    auth_scheme = ""

    def __init__(self, config: ProviderConfig, network: Network) -> None:
        super().__init__(config, network)
        version = config.options.get("anthropic_version") or DEFAULT_VERSION
        self.default_headers = {"anthropic-version": str(version)}

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_error_body(error.status, error.message)


def anthropic_error_body(status: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
