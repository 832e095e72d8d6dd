"""The gateway's own errors: each class carries its HTTP status, type and code.

GatewayError
├── BadRequest            400 invalid_request_error
├── Unauthorized          401 authentication_error / unauthorized
│   └── InvalidApiKey     401 invalid_request_error / invalid_api_key (gateway keys)
├── NotFound              404 invalid_request_error / unknown_route
├── PayloadTooLarge       413 invalid_request_error / request_too_large
├── LoopDetected          508 gateway_error / loop_detected
├── UpstreamUnreachable   502 upstream_error / upstream_unreachable
├── UpstreamProtocolError 502 upstream_error / upstream_protocol_error
├── UpstreamTimeout       504 upstream_error / upstream_timeout
├── ClientClosedRequest   499 gateway_error / client_closed_request (recorded, never seen)
├── ServiceStopping       503 gateway_error / shutting_down
└── InternalError         500 gateway_error / internal_error

Errors from the provider itself (a 4xx or 5xx it answered) are never wrapped: they
pass through to the client untouched. One renderer turns these into the OpenAI-style
body `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

import json


class GatewayError(Exception):
    status = 500
    type = "gateway_error"
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        payload = {"error": {"message": self.message, "type": self.type, "code": self.code}}
        return json.dumps(payload).encode()


class BadRequest(GatewayError):
    status, type, code = 400, "invalid_request_error", "bad_request"


class Unauthorized(GatewayError):
    status, type, code = 401, "authentication_error", "unauthorized"


class InvalidApiKey(Unauthorized):
    """A proxied request without a valid key, in the shape OpenAI uses for one."""

    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class NotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "unknown_route"


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class LoopDetected(GatewayError):
    status, type, code = 508, "gateway_error", "loop_detected"


class UpstreamUnreachable(GatewayError):
    status, type, code = 502, "upstream_error", "upstream_unreachable"


class UpstreamProtocolError(GatewayError):
    status, type, code = 502, "upstream_error", "upstream_protocol_error"


class UpstreamTimeout(GatewayError):
    status, type, code = 504, "upstream_error", "upstream_timeout"


class ClientClosedRequest(GatewayError):
    status, type, code = 499, "gateway_error", "client_closed_request"


class ServiceStopping(GatewayError):
    status, type, code = 503, "gateway_error", "shutting_down"


class InternalError(GatewayError):
    status, type, code = 500, "gateway_error", "internal_error"


def for_status(status: int, code: str, message: str) -> GatewayError:
    """An error for a status the taxonomy has no class for (e.g. 405 from routing)."""
    error = GatewayError(message)
    error.status = status
    error.type = "invalid_request_error" if status < 500 else "gateway_error"
    error.code = code
    return error


def error_headers(
    error: GatewayError, request_id: str | None = None, body: bytes | None = None
) -> list[tuple[str, str]]:
    """Headers for an error reply; `body` when it is rendered in a provider's own shape."""
    length = len(body if body is not None else error.body())
    headers = [("Content-Type", "application/json"), ("Content-Length", str(length))]
    if request_id:
        headers.append(("x-request-id", request_id))
    return headers
