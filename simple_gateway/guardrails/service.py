"""The guardrails of one worker, and the two hooks the forwarder calls.

`Guardrails.begin` runs the input stage on the client's body before anything is sent
upstream: it reads a JSON body whole (up to `guardrails.max_body`), checks its text,
writes redactions back into the body that will be sent (and recorded), or refuses.
`ExchangeGuard.output` wraps the provider's response so the output stage sees the reply:
a plain JSON reply is read whole (bounded) and checked before a byte goes out; a stream
goes through the `StreamGuard`.

Bodies that are not JSON (uploads, binary) are not inspected. A JSON body larger than
`max_body` cannot be checked: each applicable guardrail records an `error` run, and the
request is refused with 413 when one of them is enforced with `on_error: block`, passed
unchecked otherwise. The same rule holds for replies (refused with 503).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

from simple_gateway import errors
from simple_gateway.guardrails.base import Outcome, Services, Stage, Subject
from simple_gateway.guardrails.config import Entry, GuardrailsConfig, load_config
from simple_gateway.guardrails.formats import RouteFormat, format_for, register_builtin_formats
from simple_gateway.guardrails.http import OutboundHTTP
from simple_gateway.guardrails.pipeline import Executors, Pipeline, RunObserver, StageResult
from simple_gateway.guardrails.refusal import Answer, Refusal, refusal_for, render
from simple_gateway.guardrails.registry import guardrail_types
from simple_gateway.ids import new_id
from simple_gateway.providers import Route
from simple_gateway.proxy.upstream import Response, UpstreamConnection
from simple_gateway.records.enrich import decode_content
from simple_gateway.records.model import BodyCapture, GuardrailRun, Record
from simple_gateway.records.model import Outcome as RecordOutcome
from simple_gateway.settings import Settings
from simple_gateway.translate.base import BodyTransform

_READ = 64 * 1024


def register_builtin_types() -> None:
    from simple_gateway.guardrails.builtin import register_builtins

    register_builtins()
    register_builtin_formats()


def build_config(settings: Settings, http: OutboundHTTP | None = None) -> GuardrailsConfig:
    """Parse and build the configured guardrails; ValueError names a bad entry."""
    if not guardrail_types():
        register_builtin_types()
    services = Services(http=http or OutboundHTTP(), providers=settings.providers)
    return load_config(settings.sections.get("guardrails"), services)


class Guardrails:
    """Input and output pipelines, their thread pools and outbound session."""

    def __init__(self, config: GuardrailsConfig, http: OutboundHTTP, observer: RunObserver | None):
        self.config = config
        self.http = http
        self.executors = Executors(config.priorities(), config.workers)
        self.input = Pipeline(config.input, self.executors, observer)
        self.output = Pipeline(config.output, self.executors, observer)
        self._models_matter = any(e.match.models for e in config.output)

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: RunObserver | None = None
    ) -> Guardrails | None:
        """The worker's guardrails; None when none are configured (the proxy does no work)."""
        http = OutboundHTTP()
        config = build_config(settings, http)
        if config.empty:
            return None
        return cls(config, http, observer)

    def start(self) -> None:
        self.executors.start()

    def stop(self) -> None:
        self.executors.stop()
        self.http.close()

    def begin(
        self,
        request_id: str,
        record: Record,
        route: Route,
        environ: dict[str, Any],
        headers: dict[str, str],
    ) -> ExchangeGuard:
        """Run the input stage; the guard's `answer` is set when the request is refused."""
        guard = ExchangeGuard(self, request_id, record, route)
        if guard.format is None:
            return guard
        if not self._models_matter and not any(
            e.match.could_apply(guard.provider, guard.path) for e in self.input.entries
        ):
            return guard
        body = _JSONBody.read(environ, headers, self.config.max_body)
        if body is None:
            return guard
        if body.parsed is not None:
            guard.model = _str(body.parsed.get("model"))
            guard.wants_stream = body.parsed.get("stream") is True
        inputs = guard.applicable(self.input.entries)
        if not inputs:
            body.put_back(environ, headers)
            return guard
        if body.oversized:
            result = _unchecked(inputs, Stage.INPUT, "request body larger than guardrails.max_body")
            guard.keep(result)
            if result.stopped_by is not None:
                guard.refuse_oversized(body.size, result)
                guard.answer_headers_for_client()
                return guard
            body.put_back(environ, headers)
            return guard
        if body.parsed is None:
            body.put_back(environ, headers)
            return guard
        slots = guard.format.request_slots(body.parsed)
        subject = guard.subject(tuple(s.get() for s in slots), Stage.INPUT)
        result = self.input.run(subject, inputs)
        guard.keep(result)
        if result.stopped_by is not None:
            record.request_body = BodyCapture(
                size=body.size, content_type=headers.get("Content-Type")
            )
            record.bytes_in = body.size
            guard.refuse(result, Stage.INPUT)
            guard.answer_headers_for_client()
            return guard
        if result.modified:
            for slot, text in zip(slots, result.parts, strict=True):
                slot.set(text)
            body.replace(json.dumps(body.parsed, ensure_ascii=False).encode())
        body.put_back(environ, headers)
        return guard


class ExchangeGuard:
    """The guardrails' view of one exchange, from the input stage to the end of the reply."""

    def __init__(self, guardrails: Guardrails, request_id: str, record: Record, route: Route):
        self.guardrails = guardrails
        self.request_id = request_id
        self.record = record
        self.provider = route.provider.name
        self.path = record.path
        self.format: RouteFormat | None = format_for(route.upstream_path)
        self.model: str | None = None
        self.wants_stream = False
        self.answer: Answer | None = None
        self._conn: UpstreamConnection | None = None

    def applicable(self, entries: Sequence[Entry]) -> list[Entry]:
        return [e for e in entries if e.match.applies(self.provider, self.path, self.model)]

    def subject(self, parts: tuple[str, ...], stage: Stage) -> Subject:
        return Subject(parts, stage, self.request_id, self.provider, self.model, self.path)

    def keep(self, result: StageResult) -> None:
        self.record.guardrail_runs.extend(result.runs)

    def refuse(self, result: StageResult, stage: Stage, stream: bool | None = None) -> Refusal:
        assert self.format is not None
        refusal = refusal_for(result, stage)
        wants_stream = self.wants_stream if stream is None else stream
        self.answer = render(refusal, self.format, self.model or "gateway", wants_stream)
        self.mark(refusal, result)
        self.record.status = self.answer.status
        self.record.response_body = BodyCapture(
            inline=self.answer.body,
            size=len(self.answer.body),
            content_type=dict(self.answer.headers).get("Content-Type"),
        )
        self.record.bytes_out = len(self.answer.body)
        return refusal

    def refuse_oversized(self, size: int, result: StageResult) -> None:
        """A body too large to check, under an `on_error: block` guardrail: 413."""
        assert self.format is not None and result.stopped_by is not None
        refusal = Refusal(
            guardrail=result.stopped_by.name,
            message=(
                f"request body of {size} bytes is larger than guardrails.max_body "
                f"({self.guardrails.config.max_body} bytes) and cannot be checked"
            ),
            status=413,
            unavailable=True,
            completion=False,
        )
        body = self.format.error_body(refusal)
        self.answer = Answer(
            413,
            [
                ("x-guardrail-blocked", refusal.guardrail),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ],
            body,
        )
        self.mark(refusal, result)
        self.record.status = 413
        self.record.error_kind = errors.PayloadTooLarge.code
        self.record.response_body = BodyCapture(inline=body, size=len(body))
        self.record.bytes_out = len(body)

    def answer_headers_for_client(self) -> None:
        """An input refusal goes to the client directly: it carries the exchange's id."""
        assert self.answer is not None
        self.answer.headers.append(("x-request-id", self.request_id))

    def mark(self, refusal: Refusal, result: StageResult) -> None:
        record = self.record
        record.blocked_by = refusal.guardrail
        if refusal.unavailable:
            record.outcome = RecordOutcome.GATEWAY_ERROR
            record.error_kind = "guardrail_unavailable"
        else:
            record.outcome = RecordOutcome.BLOCKED
            record.error_kind = "guardrail_blocked"
        record.error_message = refusal.message

    # -- the reply -----------------------------------------------------------------

    def output(
        self, conn: UpstreamConnection, response: Response, transform: BodyTransform | None
    ) -> tuple[Response, BodyTransform | None]:
        """The response the forwarder relays (the provider's, checked, or a refusal), and
        the translation still to apply to it (None once the guard has applied it)."""
        if self.format is None or not 200 <= response.status < 300:
            return response, transform
        entries = self.applicable(self.guardrails.output.entries)
        if not entries:
            return response, transform
        if transform is not None:  # check the reply as the client will get it
            response = cast(Response, Translated(response, transform))
        return self._checked(conn, response, entries), None

    def _checked(
        self, conn: UpstreamConnection, response: Response, entries: list[Entry]
    ) -> Response:
        from simple_gateway.guardrails.stream import StreamGuard

        self._conn = conn
        content_type = (response.getheader("Content-Type") or "").lower()
        if content_type.startswith("text/event-stream"):
            return cast(Response, StreamGuard(self, entries, conn, response))
        if "json" not in content_type:
            return response
        return cast(Response, self._check_reply(entries, response))

    def _check_reply(self, entries: list[Entry], response: Response) -> _Replacement | Response:
        limit = self.guardrails.config.max_body
        data = response.read(limit + 1)
        headers = response.getheaders()
        if len(data) > limit:
            return self._unchecked_reply(
                entries, response, data, "reply larger than guardrails.max_body"
            )
        encoding = response.getheader("Content-Encoding")
        text = data
        if encoding:
            decoded = decode_content(data, encoding, limit)
            if decoded is None or not decoded[1]:
                return self._unchecked_reply(entries, response, data, f"cannot decode {encoding}")
            text = decoded[0]
        try:
            parsed = json.loads(text)
        except ValueError:
            return _Replacement(response, response.status, headers, data)
        if not isinstance(parsed, dict):
            return _Replacement(response, response.status, headers, data)
        assert self.format is not None
        slots = self.format.response_slots(parsed)
        if not slots:  # no reply text here (an embedding, a model list): nothing to check
            return _Replacement(response, response.status, headers, data)
        result = self.guardrails.output.run(
            self.subject(tuple(s.get() for s in slots), Stage.OUTPUT), entries
        )
        self.keep(result)
        if result.stopped_by is not None:
            self.refuse(result, Stage.OUTPUT, stream=False)
            assert self.answer is not None
            return _Replacement(response, self.answer.status, self.answer.headers, self.answer.body)
        if not result.modified:
            return _Replacement(response, response.status, headers, data)
        for slot, new in zip(slots, result.parts, strict=True):
            slot.set(new)
        body = json.dumps(parsed, ensure_ascii=False).encode()
        kept = [
            (n, v)
            for n, v in headers
            if n.lower() not in ("content-length", "content-encoding", "x-request-id")
        ]
        return _Replacement(
            response, response.status, [*kept, ("Content-Length", str(len(body)))], body
        )

    def _unchecked_reply(
        self, entries: list[Entry], response: Response, head: bytes, why: str
    ) -> _Replacement | Response:
        result = _unchecked(entries, Stage.OUTPUT, why)
        self.keep(result)
        if result.stopped_by is not None:
            self.refuse(result, Stage.OUTPUT, stream=False)
            assert self.answer is not None
            if self._conn is not None:
                self._conn.abort()  # the rest of the reply is not read: never reuse it
            answer = self.answer
            return _Replacement(response, answer.status, answer.headers, answer.body)
        return _Replacement(response, response.status, response.getheaders(), head, rest=response)


class _Replacement:
    """A response for the forwarder to relay, served from bytes already read."""

    def __init__(
        self,
        upstream: Response,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        rest: Response | None = None,
    ) -> None:
        self._upstream = upstream
        self.status = status
        self.reason = None
        self.length = 0
        self._headers = headers
        self._chunks: Iterator[bytes] = iter([body] if body else [])
        self._rest = rest

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self._headers:
            if key.lower() == lowered:
                return value
        return default

    def read1(self, n: int = -1) -> bytes:
        chunk = next(self._chunks, b"")
        if chunk or self._rest is None:
            return chunk
        data = self._rest.read1(n)
        self.length = self._rest.length or 0
        return data

    def close(self) -> None:
        self._upstream.close()


class Translated:
    """The provider's response seen through the routing layer's translation to the client's
    format, so output guardrails check what the client will get."""

    _REPLACED = frozenset({"content-type", "content-length", "content-encoding"})

    def __init__(self, upstream: Response, transform: BodyTransform) -> None:
        self._upstream = upstream
        self._transform = transform
        self.status = upstream.status
        self.reason = upstream.reason
        self.length = 0
        self._headers = [
            (n, v) for n, v in upstream.getheaders() if n.lower() not in self._REPLACED
        ]
        self._headers.append(("Content-Type", transform.content_type))
        self._done = False

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        return next((v for n, v in self._headers if n.lower() == lowered), default)

    def read(self, amt: int) -> bytes:
        parts, size = [], 0
        while size < amt:
            chunk = self.read1(amt - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def read1(self, n: int = -1) -> bytes:
        while not self._done:
            chunk = self._upstream.read1(n)
            if not chunk:
                self._done = True
                self.length = self._upstream.length or 0
                return self._transform.finish()
            out = self._transform.feed(chunk)
            if out:
                return out
        return b""

    def close(self) -> None:
        self._upstream.close()


def _unchecked(entries: Sequence[Entry], stage: Stage, why: str) -> StageResult:
    """Error runs for a body the guardrails could not read; stops on an `on_error: block`."""
    result = StageResult(())
    now = time.time()
    for entry in entries:
        result.runs.append(
            GuardrailRun(
                id=new_id(), started_at=now, guardrail=entry.name, type=entry.type,
                stage=str(stage), priority=entry.priority, verdict=str(Outcome.ERROR),
                enforced=entry.enforced, duration_ms=0.0, error=why,
            )
        )  # fmt: skip
        if result.stopped_by is None and entry.enforced and entry.on_error == "block":
            result.stopped_by, result.outcome, result.reason = entry, Outcome.ERROR, why
    return result


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _JSONBody:
    """A JSON request body read whole (bounded), to be checked and put back for sending."""

    def __init__(self, data: bytes, rest: Any, oversized: bool) -> None:
        self.data = data
        self.rest = rest  # the unread remainder of the client's stream, when oversized
        self.oversized = oversized
        self.size = len(data)
        self.parsed: dict[str, Any] | None = None
        self._changed = False
        if not oversized:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            self.parsed = parsed if isinstance(parsed, dict) else None

    @classmethod
    def read(cls, environ: dict[str, Any], headers: dict[str, str], limit: int) -> _JSONBody | None:
        content_type = (environ.get("CONTENT_TYPE") or "").lower()
        if "json" not in content_type or environ.get("HTTP_CONTENT_ENCODING"):
            return None
        stream = environ["wsgi.input"]
        length_text = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                return None  # the forwarder answers it with its own 400
            if length > limit:
                return cls(_read(stream, limit), stream, oversized=True)
            return cls(_read(stream, length), None, oversized=False)
        if not chunked:
            return None
        data = _read(stream, limit + 1)
        if len(data) > limit:
            return cls(data, stream, oversized=True)
        return cls(data, None, oversized=False)

    def replace(self, data: bytes) -> None:
        self.data = data
        self._changed = True

    def put_back(self, environ: dict[str, Any], headers: dict[str, str]) -> None:
        """Let the forwarder read (and record) the body as it will be sent."""
        if self.rest is not None:
            environ["wsgi.input"] = _Chained(self.data, self.rest)
            return
        environ["wsgi.input"] = io.BytesIO(self.data)
        if self._changed or environ.pop("HTTP_TRANSFER_ENCODING", None) is not None:
            environ["CONTENT_LENGTH"] = str(len(self.data))
            headers["Content-Length"] = str(len(self.data))
            headers.pop("Transfer-Encoding", None)


class _Chained:
    """Bytes already read, then the rest of the client's stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        data = self._head.read(size)
        if data:
            return data
        return self._rest.read(size)  # type: ignore[no-any-return]


def _read(stream: Any, length: int) -> bytes:
    parts = []
    remaining = length
    while remaining > 0:
        try:
            chunk = stream.read(min(remaining, _READ))
        except Exception as exc:
            raise errors.BadRequest(f"the request body could not be read: {exc}") from exc
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
