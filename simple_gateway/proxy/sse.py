"""Server-Sent Events, parsed incrementally as the WHATWG spec describes.

The parser works on bytes and splits lines before decoding: CR and LF are ASCII,
so a line never ends inside a multi-byte UTF-8 sequence, and a chunk boundary
may fall anywhere (inside a line, a code point, or between the CR and LF of a
CRLF). The text is decoded per field value with invalid bytes replaced.

Per spec an event is dispatched only by a blank line; at end of stream a
pending event is discarded. A recorder usually wants it anyway (a server that
closes right after its last ``data:`` line), so ``close`` takes a flag.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One dispatched event. `id` is the last event id seen so far, None if there was none."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Feed bytes as they arrive; get back the events each chunk completed."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the start of an unterminated line
        self._skip_lf = False  # the previous chunk ended with CR; a leading LF belongs to it
        self._bom_checked = False
        self._event = b""
        self._data: list[bytes] = []
        self._last_id: bytes | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        if not data:
            return []
        if not self._bom_checked:
            data = b"".join(self._pending) + data
            self._pending = []
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._pending.append(data)
                return []
            self._bom_checked = True
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if self._skip_lf:
            self._skip_lf = False
            if data.startswith(b"\n"):
                data = data[1:]
        end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if end < 0:
            if data:
                self._pending.append(data)
            return []
        if self._pending:
            self._pending.append(data[: end + 1])
            complete = b"".join(self._pending)
        else:
            complete = data[: end + 1]
        rest = data[end + 1 :]
        self._pending = [rest] if rest else []
        self._skip_lf = not rest and complete.endswith(b"\r")
        return self._lines(complete.splitlines())

    def close(self, flush_incomplete: bool = True) -> list[SSEEvent]:
        """End of stream. With `flush_incomplete=False` behave as the spec: drop a pending event.

        With the default, a last line without a terminator is processed and an event
        still missing its blank line is dispatched.
        """
        events: list[SSEEvent] = []
        if flush_incomplete:
            line = b"".join(self._pending)
            if not self._bom_checked and line.startswith(_BOM):
                line = line[len(_BOM) :]
            events = self._lines([line, b""] if line else [b""])
        self._pending = []
        self._event = b""
        self._data = []
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        """Apply complete lines; one loop with locals, as it runs once per line of a transcript."""
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(self._event_of(data))
                    data = self._data = []
                self._event = b""
                continue
            if line[0] == 0x3A:  # ":" starts a comment
                continue
            colon = line.find(b":")
            if colon < 0:
                name, value = line, b""
            else:
                name, value = line[:colon], line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id" and b"\x00" not in value:
                self._last_id = value
        return events

    def _event_of(self, data: list[bytes]) -> SSEEvent:
        return SSEEvent(
            self._event.decode("utf-8", "replace") if self._event else "message",
            (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace"),
            None if self._last_id is None else self._last_id.decode("utf-8", "replace"),
        )


def parse_sse(data: bytes, flush_incomplete: bool = True) -> list[SSEEvent]:
    """Every event of a complete transcript (see `SSEParser.close` for the flag)."""
    parser = SSEParser()
    return parser.feed(data) + parser.close(flush_incomplete)
