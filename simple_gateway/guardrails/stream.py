"""Output guardrails on a streamed reply.

design: the StreamGuard stands in for the provider's response; the forwarder reads it with
`read1` as usual. Chunks pass on as they arrive while the reply's text (the deltas of the
route's stream format) accumulates. At a sentence boundary, and at least every
`stream_check_chars` new characters, the output stage runs on the text so far in the
stream-check pool, one check at a time, while chunks keep flowing; its result is looked at
before each chunk is handed on. The events that complete a reply (`[DONE]`,
`message_stop`, `response.completed`, ...) are held back until a final check of the whole
text has passed. On a failure the guard drops what it still holds, hands on one error event
in the route's stream format, never `[DONE]`, ends the body and aborts the provider's
connection, so the official SDKs raise instead of returning a truncated answer as complete.

Text already sent cannot be changed: in a stream a redact or replace verdict ends it like a
block. With `stream: buffer` on an applicable entry the whole stream is held (up to
`guardrails.max_body`) until the reply has passed; a replacement is then sent as a
well-formed stream of the new text, and `respond: completion` can answer a block.
"""

from __future__ import annotations

import json
import re
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from simple_gateway.guardrails.base import Outcome, Stage
from simple_gateway.guardrails.config import Entry
from simple_gateway.guardrails.pipeline import StageResult
from simple_gateway.guardrails.refusal import refusal_for
from simple_gateway.proxy.sse import SSEParser
from simple_gateway.proxy.upstream import Response, UpstreamConnection

if TYPE_CHECKING:
    from simple_gateway.guardrails.service import ExchangeGuard

_SENTENCE_END = re.compile(r"[.!?\n]\s*$|[.!?]\s")


class StreamGuard:
    def __init__(
        self,
        guard: ExchangeGuard,
        entries: list[Entry],
        conn: UpstreamConnection,
        response: Response,
    ) -> None:
        assert guard.format is not None
        self._guard = guard
        self._format = guard.format
        self._entries = entries
        self._conn = conn
        self._upstream = response
        self.status = response.status
        self.reason = response.reason
        self.length = 0
        self._headers = response.getheaders()
        config = guard.guardrails.config
        self._every = config.stream_check_chars
        self._limit = config.max_body
        self._buffer = any(e.stream == "buffer" for e in entries)
        self._parser = SSEParser()
        self._text: list[str] = []
        self._length = 0
        self._checked_length = 0
        self._out: deque[bytes] = deque()
        self._held: list[bytes] = []
        self._held_size = 0
        self._holding = self._buffer
        self._check: Future[StageResult] | None = None
        self._want_check = False
        self._finished = False

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._upstream.getheader(name, default)

    def read1(self, n: int = -1) -> bytes:
        while True:
            if self._check is not None and self._check.done():
                self._settle(self._check.result())
            if self._out:
                return self._out.popleft()
            if self._finished:
                return b""
            chunk = self._upstream.read1(n)
            if not chunk:
                self._end()
            else:
                self._feed(chunk)

    def close(self) -> None:
        self._upstream.close()

    # -- relay ---------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> None:
        before = self._length
        for event in self._parser.feed(chunk):
            data = _json(event.data)
            delta = self._format.stream_delta(event, data)
            if delta:
                self._text.append(delta)
                self._length += len(delta)
                self._want_check = self._want_check or bool(_SENTENCE_END.search(delta))
            if not self._holding and self._format.ends_stream(event, data):
                self._holding = True
        if self._holding:
            self._held.append(chunk)
            self._held_size += len(chunk)
            if self._buffer and self._held_size > self._limit:
                self._overflow()
        else:
            self._out.append(chunk)
        if self._length - self._checked_length >= self._every:
            self._want_check = True
        if self._want_check and self._length > before and not self._buffer:
            self._start_check()

    def _start_check(self) -> None:
        if self._check is not None:
            return  # one at a time; the wish stays for when this one is done
        self._want_check = False
        self._checked_length = self._length
        subject = self._guard.subject(("".join(self._text),), Stage.OUTPUT)
        pipeline = self._guard.guardrails.output
        pool = self._guard.guardrails.executors.stream_pool()
        self._check = pool.submit(pipeline.run, subject, self._entries)

    def _settle(self, result: StageResult) -> None:
        self._check = None
        self._guard.keep(result)
        if result.stopped_by is not None or result.modified:
            self._fail(result)
        elif self._want_check and self._length > self._checked_length:
            self._start_check()

    def _end(self) -> None:
        """The provider finished: check the whole reply, then release what was held."""
        self._finished = True
        if self._check is not None:
            running, self._check = self._check.result(), None
            self._guard.keep(running)
            if running.stopped_by is not None or running.modified:
                self._fail(running)
                return
        if not self._text:  # no reply text (tool calls only, say): nothing to check
            self._out.extend(self._held)
            self._held = []
            return
        subject = self._guard.subject(("".join(self._text),), Stage.OUTPUT)
        result = self._guard.guardrails.output.run(subject, self._entries)
        self._guard.keep(result)
        if result.stopped_by is None and not result.modified:
            self._out.extend(self._held)
        elif self._buffer and result.stopped_by is None:
            self._out.append(self._replacement(result.parts[0]))
        else:
            self._fail(result)
        self._held = []

    def _replacement(self, text: str) -> bytes:
        body = self._format.completion_stream(text, self._guard.model or "gateway")
        if body is not None:
            return body
        return b""

    def _fail(self, result: StageResult) -> None:
        """End the stream with an error event (or, fully buffered, a refusal reply)."""
        if result.stopped_by is None:  # a modification a stream already sent cannot take
            result = _as_block(result)
        self._finished = True
        self._held = []
        self._out.clear()
        refusal = refusal_for(result, Stage.OUTPUT)
        self._guard.mark(refusal, result)
        body = None
        if refusal.completion and self._buffer:
            body = self._format.completion_stream(refusal.message, self._guard.model or "gateway")
        self._out.append(body if body is not None else self._format.stream_error(refusal))
        self._conn.abort()  # the rest of the provider's stream is not read: never reuse it

    def _overflow(self) -> None:
        """A buffered stream outgrew max_body: fail closed, or stop buffering, per on_error."""
        from simple_gateway.guardrails.service import _unchecked

        buffered = [e for e in self._entries if e.stream == "buffer"]
        result = _unchecked(
            buffered, Stage.OUTPUT, "streamed reply larger than guardrails.max_body"
        )
        self._guard.keep(result)
        if result.stopped_by is not None:
            self._fail(result)
            return
        self._buffer = False
        self._entries = [e for e in self._entries if e.stream != "buffer"]
        self._out.extend(self._held)
        self._held = []
        self._holding = False


def _as_block(result: StageResult) -> StageResult:
    return StageResult(
        result.parts,
        stopped_by=result.modified_by,
        outcome=Outcome.BLOCK,
        reason="it would change text the stream has already sent",
    )


def _json(data: str) -> Any:
    if not data.startswith("{"):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None
