"""Forwards one request to its provider and streams the answer back, verbatim.

design: the forwarder is a plain WSGI callable. The request body streams to the
provider through a tap that keeps a bounded copy; the response body is read with
`read1`, which never decodes, so every chunk reaches the client as it arrives and
byte-identical (compressed stays compressed). `ResponseBody.close()`, which the WSGI
server calls however the response ends, finishes the record and releases the
upstream connection. Input guardrails and translation hook in before `_send`;
output guardrails and usage accounting read the finished record.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from simple_gateway import errors
from simple_gateway.ids import ENVIRON_KEY, accept_client_id, new_id
from simple_gateway.keys import KeyGate
from simple_gateway.providers import Provider, Route
from simple_gateway.proxy.capture import BodyTap
from simple_gateway.proxy.client_addr import client_address
from simple_gateway.proxy.exchange import Exchange, LiveExchanges
from simple_gateway.proxy.headers import CREDENTIAL_HEADERS, request_headers, strip_hop_by_hop
from simple_gateway.proxy.upstream import (
    ConnectFailed,
    Response,
    Target,
    UpstreamConnection,
    UpstreamPool,
)
from simple_gateway.proxy.watcher import DisconnectWatcher, Watch
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.model import BodyCapture, Outcome, Record
from simple_gateway.redaction import is_secret_name, redact_headers, redact_query
from simple_gateway.routing.frontdoor import FrontDoor, Routed
from simple_gateway.settings import IPNetwork
from simple_gateway.translate.base import BodyTransform

if TYPE_CHECKING:
    from simple_gateway.guardrails import Guardrails

log = logging.getLogger(__name__)
access_log = logging.getLogger("simple_gateway.access")

LOOP_HEADER = "X-Gateway-Loop"  # canonical case, as headers.request_headers gives it
READ_SIZE = 64 * 1024
BUFFERED_BODY_LIMIT = 1024 * 1024  # request bodies up to this are read whole (and retryable)
StartResponse = Callable[..., Any]


class RecordSink(Protocol):
    def submit(self, record: Record) -> None: ...


class ExchangeObserver(Protocol):
    def exchange_finished(self, record: Record) -> None: ...


@dataclass
class ForwarderConfig:
    instance_id: str
    max_request_body: int
    inline_limit: int
    access_log: bool = True
    trusted_proxies: tuple[IPNetwork, ...] = ()  # whose X-Forwarded-For names the client


class Forwarder:
    def __init__(
        self,
        config: ForwarderConfig,
        pool: UpstreamPool,
        watcher: DisconnectWatcher,
        live: LiveExchanges,
        blobs: BlobStore | None = None,
        records: RecordSink | None = None,
        observer: ExchangeObserver | None = None,
        front_door: FrontDoor | None = None,
        guardrails: Guardrails | None = None,
        gate: KeyGate | None = None,
    ) -> None:
        self.config = config
        self.gate = gate or KeyGate(None)
        self.pool = pool
        self.watcher = watcher
        self.live = live
        self.blobs = blobs
        self.records = records
        self.observer = observer
        self.front_door = front_door
        self.guardrails = guardrails

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, route: Route
    ) -> Iterable[bytes]:
        headers = request_headers(environ)
        client_id = accept_client_id(headers.get("X-Request-Id"))
        record_id = new_id()
        exchange = Exchange(record_id, client_id or record_id)
        record = self._new_record(exchange, environ, headers, route.provider.name)
        self.live.add(exchange)
        watch = self.watcher.watch(environ.get("gunicorn.socket"), exchange.client_gone)
        try:
            return self._forward(exchange, record, environ, headers, route, start_response, watch)
        except (errors.GatewayError, _Stopped) as error:
            return self._fail(exchange, record, error, start_response, watch, route.provider)
        except Exception:
            log.exception("request %s failed inside the gateway", exchange.request_id)
            internal = errors.InternalError("the gateway failed while handling this request")
            return self._fail(exchange, record, internal, start_response, watch, route.provider)

    # -- the request leg ---------------------------------------------------------

    def _forward(
        self,
        exchange: Exchange,
        record: Record,
        environ: dict[str, Any],
        headers: dict[str, str],
        route: Route,
        start_response: StartResponse,
        watch: Watch | None,
    ) -> Iterable[bytes]:
        self._check_loop(headers)
        admission = self.gate.admit(route.provider, route.upstream_path, headers)  # keys
        record.gateway_key = admission.gateway_key
        guard = None
        if self.guardrails is not None:  # input stage, on the client's own format
            guard = self.guardrails.begin(exchange.request_id, record, route, environ, headers)
            if guard.answer is not None:
                start_response(
                    f"{guard.answer.status} {_reason(guard.answer.status)}", guard.answer.headers
                )
                self._finish(exchange, record, watch)
                return [guard.answer.body]
        length = _content_length(environ)
        if length is not None and length > self.config.max_request_body:
            raise errors.PayloadTooLarge(
                f"request body of {length} bytes exceeds this gateway's limit of "
                f"{self.config.max_request_body} bytes (MAX_REQUEST_BODY_MB)"
            )
        tap = self._tap(exchange, route, "request", headers.get("Content-Type"), None)
        body = self._request_body(environ, length, tap)
        routed: Routed | None = None
        if self.front_door is not None:  # model aliases and provider/model names
            routed, body = self.front_door.plan(record.path, route, record.method, body)
        # Credentials settled, the provider's static headers and version defaults added.
        client_outgoing = self._outgoing_headers(headers)
        upstream = admission.apply(dict(client_outgoing))
        record.model = upstream.model or record.model
        record.secrets += upstream.secrets
        outgoing = upstream.headers
        target = route.provider.target(upstream.path)
        record.upstream_url = route.provider.base_url + _redacted_path(upstream.path)
        try:
            if routed is None:
                conn, response = self._send(
                    exchange, target, environ["REQUEST_METHOD"], outgoing, body
                )
            else:
                # A deployment gets its own provider's static headers, never the route's.
                settled = _with_settled_credentials(client_outgoing, outgoing)
                conn, response = self._send_routed(exchange, record, routed, settled)
        finally:
            if tap is not None:
                record.request_body = tap.finish()
            record.bytes_in = tap.size if tap is not None else (length or 0)
        exchange.first_byte_at = time.time()
        transform = routed.transform(response) if routed is not None else None
        if guard is not None:  # output stage, on the reply in the client's format
            response, transform = guard.output(conn, response, transform)
        response_headers = response.getheaders()
        record.status = response.status
        record.response_headers = redact_headers(response_headers)
        content_type = response.getheader("Content-Type")
        encoding = response.getheader("Content-Encoding")
        if transform is not None:  # the reply is translated back into the client's format
            content_type, encoding = transform.content_type, None
        record.stream = (content_type or "").startswith("text/event-stream")
        client_headers = self._client_headers(response_headers, exchange, record.stream)
        if routed is not None:
            client_headers = routed.client_headers(client_headers, transform)
        start_response(
            f"{response.status} {response.reason or _reason(response.status)}", client_headers
        )
        response_tap = self._tap(exchange, route, "response", content_type, encoding)
        return ResponseBody(
            self, exchange, record, conn, response, response_tap, environ, watch, transform
        )

    def _check_loop(self, headers: dict[str, str]) -> None:
        hops = headers.get(LOOP_HEADER, "")
        if self.config.instance_id in (h.strip() for h in hops.split(",")):
            raise errors.LoopDetected(
                "this request has already passed through this gateway: a provider's base URL "
                "points back at the gateway"
            )

    def _tap(
        self,
        exchange: Exchange,
        route: Route,
        direction: str,
        content_type: str | None,
        content_encoding: str | None,
    ) -> BodyTap | None:
        if self.blobs is None:
            return None
        return BodyTap(
            self.blobs,
            self.config.inline_limit,
            exchange.id,
            route.provider.name,
            direction,
            content_type,
            content_encoding,
        )

    def _request_body(
        self, environ: dict[str, Any], length: int | None, tap: BodyTap | None
    ) -> bytes | Iterator[bytes] | None:
        stream = environ["wsgi.input"]
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length is None and not chunked:
            return None
        if length is not None and length <= BUFFERED_BODY_LIMIT:
            data = _read_exactly(stream, length)
            if tap is not None:
                tap.write(data)
            return data
        return self._stream_body(stream, length, tap)

    def _stream_body(self, stream: Any, length: int | None, tap: BodyTap | None) -> Iterator[bytes]:
        limit = self.config.max_request_body
        sent = 0
        while True:
            chunk = _read_client(stream, READ_SIZE)
            if not chunk:
                break
            sent += len(chunk)
            if sent > limit:
                if tap is not None:
                    tap.discard("request body over MAX_REQUEST_BODY_MB: not kept")
                raise errors.PayloadTooLarge(
                    f"request body exceeds this gateway's limit of {limit} bytes "
                    "(MAX_REQUEST_BODY_MB)"
                )
            if tap is not None:
                tap.write(chunk)
            yield chunk
        if length is not None and sent < length:
            raise errors.BadRequest(f"request body ended after {sent} of {length} bytes")

    def _outgoing_headers(self, headers: dict[str, str]) -> dict[str, str]:
        outgoing = dict(strip_hop_by_hop(headers.items()))
        hops = outgoing.pop(LOOP_HEADER, None)
        outgoing[LOOP_HEADER] = (
            f"{hops}, {self.config.instance_id}" if hops else self.config.instance_id
        )
        return outgoing

    def _send_routed(
        self, exchange: Exchange, record: Record, routed: Routed, outgoing: dict[str, str]
    ) -> tuple[UpstreamConnection, Response]:
        """Send through the routing attempt loop (retries, fallbacks, cooldowns)."""

        def send(
            target: Target,
            method: str,
            headers: dict[str, str],
            body: bytes | None,
            timeout: float | None,
        ) -> tuple[UpstreamConnection, Response]:
            return self._send(exchange, target, method, headers, body, timeout)

        return routed.send(send, lambda: exchange.stop_reason is not None, record, outgoing)

    def _send(
        self,
        exchange: Exchange,
        target: Target,
        method: str,
        headers: dict[str, str],
        body: bytes | Iterator[bytes] | None,
        timeout: float | None = None,
    ) -> tuple[UpstreamConnection, Response]:
        """Send the request; a stale kept-alive connection is retried once when safe."""
        replayable = not isinstance(body, Iterator)
        chunked = not replayable and "Content-Length" not in headers
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        while True:
            conn = self.pool.acquire(target)
            if timeout is not None:
                conn.use_timeout(timeout)
            exchange.upstream = conn
            if exchange.stop_reason is not None:
                conn.abort()
            try:
                return conn, conn.send(method, target.path, headers, body, chunked)
            except errors.GatewayError:
                conn.close()
                raise
            except Exception as exc:
                conn.close()
                if exchange.stop_reason is not None:
                    raise _Stopped() from exc
                if conn.reused and replayable and _is_stale_connection(exc):
                    continue
                raise _upstream_error(exc, target) from exc

    def _client_headers(
        self, upstream: list[tuple[str, str]], exchange: Exchange, stream: bool
    ) -> list[tuple[str, str]]:
        headers = []
        for name, value in strip_hop_by_hop(upstream):
            if name.lower() == "x-request-id":
                headers.append(("x-upstream-request-id", value))
            else:
                headers.append((name, value))
        headers.append(("x-request-id", exchange.request_id))
        if stream:
            headers.append(("X-Accel-Buffering", "no"))
        return headers

    # -- endings ---------------------------------------------------------------------

    def _fail(
        self,
        exchange: Exchange,
        record: Record,
        error: errors.GatewayError | _Stopped,
        start_response: StartResponse,
        watch: Watch | None,
        provider: Provider | None = None,
    ) -> Iterable[bytes]:
        if isinstance(error, _Stopped):
            record.outcome = exchange.stop_reason or Outcome.CLIENT_DISCONNECTED
            record.error_kind = str(record.outcome)
            error = _stopped_error(record.outcome)
        else:
            record.outcome = Outcome.GATEWAY_ERROR
            record.error_kind = error.code
        record.status = error.status
        record.error_message = error.message
        body = provider.error_body(error) if provider is not None else error.body()
        record.response_body = BodyCapture(
            inline=body, size=len(body), content_type="application/json"
        )
        record.bytes_out = len(body)
        log_level = logging.WARNING if error.status >= 500 else logging.INFO
        log.log(log_level, "request %s: %s %s", exchange.request_id, error.status, error.message)
        start_response(
            f"{error.status} {_reason(error.status)}",
            errors.error_headers(error, exchange.request_id, body),
        )
        self._finish(exchange, record, watch)
        return [body]

    def _finish(self, exchange: Exchange, record: Record, watch: Watch | None) -> None:
        self.watcher.forget(watch)
        self.live.discard(exchange)
        record.first_byte_at = exchange.first_byte_at
        record.ended_at = time.time()
        if self.config.access_log:
            access_log.info(
                "%s %s %s %s %s %.1fms %dB %s",
                record.request_id,
                record.method,
                record.path + ("?" + record.query if record.query else ""),
                record.provider,
                record.status,
                (record.ended_at - record.started_at) * 1000,
                record.bytes_out,
                record.outcome,
            )
        if self.observer is not None:
            self.observer.exchange_finished(record)
        if self.records is not None:
            self.records.submit(record)

    def record_rejection(self, environ: dict[str, Any], error: errors.GatewayError) -> None:
        """Record a request refused before any provider was chosen (an unknown route)."""
        headers = request_headers(environ)
        record_id = new_id()
        request_id = environ.get(ENVIRON_KEY) or accept_client_id(headers.get("X-Request-Id"))
        exchange = Exchange(record_id, request_id or record_id)
        record = self._new_record(exchange, environ, headers, "")
        record.status = error.status
        record.outcome = Outcome.GATEWAY_ERROR
        record.error_kind = error.code
        record.error_message = error.message
        self._finish(exchange, record, None)

    def _new_record(
        self, exchange: Exchange, environ: dict[str, Any], headers: dict[str, str], provider: str
    ) -> Record:
        query = environ.get("QUERY_STRING", "")
        record = Record(
            id=exchange.id,
            request_id=exchange.request_id,
            started_at=exchange.started_at,
            provider=provider,
            method=environ["REQUEST_METHOD"],
            path=raw_path(environ),
            query=redact_query(query),
            client_addr=client_address(environ, self.config.trusted_proxies),
            user_agent=headers.get("User-Agent"),
            request_headers=redact_headers(headers),
        )
        record.secrets = _secret_values(headers, query)
        return record


class ResponseBody:
    """The WSGI response iterable: relays the provider's body, then finishes the record."""

    def __init__(
        self,
        forwarder: Forwarder,
        exchange: Exchange,
        record: Record,
        conn: UpstreamConnection,
        response: Response,
        tap: BodyTap | None,
        environ: dict[str, Any],
        watch: Watch | None,
        transform: BodyTransform | None = None,
    ) -> None:
        self._forwarder = forwarder
        self._exchange = exchange
        self._record = record
        self._conn = conn
        self._response = response
        self._tap = tap
        self._client_socket: socket.socket | None = environ.get("gunicorn.socket")
        self._watch = watch
        self._transform = transform
        self._sent = 0
        self._complete = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        read1 = self._response.read1
        tap = self._tap
        transform = self._transform
        try:
            while True:
                chunk = read1(READ_SIZE)
                if not chunk:
                    break
                if transform is not None:
                    chunk = transform.feed(chunk)
                    if not chunk:
                        continue
                if tap is not None:
                    tap.write(chunk)
                self._sent += len(chunk)
                yield chunk
            if self._exchange.stop_reason is not None:
                raise _Stopped()
            if self._response.length:  # a Content-Length the provider did not honour
                raise http.client.IncompleteRead(b"", self._response.length)
            if transform is not None:
                tail = transform.finish()
                if tail:
                    if tap is not None:
                        tap.write(tail)
                    self._sent += len(tail)
                    yield tail
            self._complete = True
        except (_Stopped, OSError, http.client.HTTPException) as exc:
            self._upstream_broke(exc)
            self._abort_client()

    def _upstream_broke(self, exc: Exception) -> None:
        record = self._record
        stopped = self._exchange.stop_reason
        if stopped is not None:
            record.outcome = stopped
            record.error_kind = str(stopped)
            record.error_message = "the exchange was cut short by the gateway"
        elif isinstance(exc, TimeoutError):
            record.outcome = Outcome.UPSTREAM_INTERRUPTED
            record.error_kind = "upstream_timeout"
            record.error_message = "the provider stopped sending within the read timeout"
        else:
            record.outcome = Outcome.UPSTREAM_INTERRUPTED
            record.error_kind = "upstream_interrupted"
            record.error_message = f"the provider cut the response short: {exc}"
        log.warning("request %s: %s", record.request_id, record.error_message)

    def _abort_client(self) -> None:
        """Make the client see an incomplete body rather than a clean, shorter one."""
        if self._client_socket is None:
            raise ConnectionAbortedError("upstream response cut short")
        with contextlib.suppress(OSError):
            self._client_socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        record = self._record
        if not self._complete and record.outcome == Outcome.COMPLETED:
            stopped = self._exchange.stop_reason
            record.outcome = stopped or Outcome.CLIENT_DISCONNECTED
            record.error_kind = str(record.outcome)
            record.error_message = "the response was not delivered in full"
        elif self._complete and record.outcome == Outcome.COMPLETED and (record.status or 0) >= 400:
            record.outcome = Outcome.UPSTREAM_ERROR
            record.error_kind = "upstream_status"
        self._response.close()  # lets http.client send the next request on this connection
        self._exchange.upstream = None  # a late stop() must not abort it once pooled
        self._forwarder.pool.release(self._conn, reusable=self._complete)
        record.bytes_out = self._sent
        if self._tap is not None:
            record.response_body = self._tap.finish()
            record.response_sha256 = self._tap.hexdigest()
        self._forwarder._finish(self._exchange, record, self._watch)


class _Stopped(Exception):
    """The exchange was stopped by another thread before the provider answered."""


def _with_settled_credentials(client: dict[str, str], settled: dict[str, str]) -> dict[str, str]:
    """The client's headers, with the credential headers as the gateway settled them."""
    headers = {k: v for k, v in client.items() if k.lower() not in CREDENTIAL_HEADERS}
    headers.update((k, v) for k, v in settled.items() if k.lower() in CREDENTIAL_HEADERS)
    return headers


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return None
    try:
        length = int(value)
    except ValueError:
        raise errors.BadRequest(f"invalid Content-Length header: {value!r}") from None
    if length < 0:
        raise errors.BadRequest(f"invalid Content-Length header: {value!r}")
    return length


def _read_client(stream: Any, size: int) -> bytes:
    """Read from the client's body; a client that fails mid-body gets a 400 on record."""
    try:
        return stream.read(size)  # type: ignore[no-any-return]
    except errors.GatewayError:
        raise
    except Exception as exc:
        raise errors.BadRequest(f"the request body could not be read: {exc}") from exc


def _read_exactly(stream: Any, length: int) -> bytes:
    parts = []
    remaining = length
    while remaining > 0:
        chunk = _read_client(stream, remaining)
        if not chunk:
            raise errors.BadRequest(
                f"request body ended after {length - remaining} of {length} bytes"
            )
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def raw_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI")
    if raw:
        path = raw.split("?", 1)[0]
        if path.startswith("/"):
            return path
    return environ.get("PATH_INFO", "/")


def _redacted_path(path_and_query: str) -> str:
    path, _, query = path_and_query.partition("?")
    return path + ("?" + redact_query(query) if query else "")


def _secret_values(headers: dict[str, str], query: str) -> list[str]:
    """Secret values this request carries, to scrub from anything the record keeps."""
    values = [v for n, v in headers.items() if is_secret_name(n)]
    values += [v for n, v in parse_qsl(query, keep_blank_values=True) if is_secret_name(n)]
    tokens = []
    for value in values:
        tokens.append(value)
        _scheme, _, credential = value.partition(" ")
        if credential:
            tokens.append(credential)
    return [t for t in tokens if len(t) >= 8]


def _is_stale_connection(exc: Exception) -> bool:
    return isinstance(
        exc,
        (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError),
    )


def _upstream_error(exc: Exception, target: Target) -> errors.GatewayError:
    scheme, host, port = target.origin
    where = f"{scheme}://{host}:{port}"
    if isinstance(exc, ConnectFailed) and exc.timed_out:
        return errors.UpstreamTimeout(
            f"the gateway timed out connecting to the provider at {where}"
        )
    if isinstance(exc, ConnectFailed):
        return errors.UpstreamUnreachable(
            f"the gateway could not connect to the provider at {where}: {exc}"
        )
    if isinstance(exc, TimeoutError):
        return errors.UpstreamTimeout(
            f"the provider at {where} did not answer within the read timeout"
        )
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionError)):
        return errors.UpstreamProtocolError(
            f"the provider at {where} closed the connection without answering"
        )
    if isinstance(exc, http.client.HTTPException):
        return errors.UpstreamProtocolError(
            f"the provider at {where} sent an invalid response: {exc}"
        )
    if isinstance(exc, OSError):
        return errors.UpstreamUnreachable(
            f"the gateway could not reach the provider at {where}: {exc.strerror or exc}"
        )
    raise exc


def _stopped_error(outcome: Outcome) -> errors.GatewayError:
    if outcome == Outcome.INTERRUPTED:
        return errors.ServiceStopping("the gateway is shutting down; retry the request")
    return errors.ClientClosedRequest(
        "the client closed the connection before the provider answered"
    )


def _reason(status: int) -> str:
    return http.client.responses.get(status, "Error")
