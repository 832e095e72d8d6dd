import pytest

from simple_gateway.proxy.sse import SSEEvent, SSEParser, parse_sse

TRANSCRIPT = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"id: 7\n"
    b"data: first line\n"
    b"data: second line\n"
    b"\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

EXPECTED = [
    SSEEvent("message_start", '{"a": 1}', None),
    SSEEvent("message", "first line\nsecond line", "7"),
    SSEEvent("message", "café €", "7"),
    SSEEvent("message", "[DONE]", "7"),
]


def feed_in_pieces(data: bytes, size: int) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events + parser.close()


def test_whole_transcript() -> None:
    assert parse_sse(TRANSCRIPT) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
def test_any_split_and_line_ending(ending: bytes, size: int) -> None:
    data = TRANSCRIPT.replace(b"\n", ending)
    assert feed_in_pieces(data, size) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_break() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent("message", "a", None)]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", "b", None)]


def test_lone_cr_then_data_is_not_swallowed() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\r")
    assert parser.feed(b"data: b\r\r") == [SSEEvent("message", "a\nb", None)]


def test_field_parsing_rules() -> None:
    data = (
        b"data\n"  # no colon: field with empty value
        b"data:no-space\n"
        b"data:  two spaces\n"
        b"unknown: ignored\n"
        b"retry: 1000\n"
        b"id: bad\x00id\n"
        b"event:ping\n"
        b"\n"
    )
    assert parse_sse(data) == [SSEEvent("ping", "\nno-space\n two spaces", None)]


def test_event_type_resets_but_id_persists() -> None:
    data = b"event: a\nid: 1\ndata: x\n\ndata: y\n\nid:\ndata: z\n\n"
    assert parse_sse(data) == [
        SSEEvent("a", "x", "1"),
        SSEEvent("message", "y", "1"),
        SSEEvent("message", "z", ""),
    ]


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert parse_sse(b"event: lonely\n\n\n: comment\n\n") == []
    assert parse_sse(b"data:\n\n") == [SSEEvent("message", "", None)]


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_leading_bom_is_stripped_once(size: int) -> None:
    data = b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n"
    events = feed_in_pieces(data, size)
    assert events[0] == SSEEvent("message", "x", None)
    assert len(events) == 1  # a BOM after the start makes an unknown field name


def test_unterminated_event_flushed_or_dropped() -> None:
    data = b"data: done\n\ndata: last"
    assert parse_sse(data) == [SSEEvent("message", "done"), SSEEvent("message", "last")]
    assert parse_sse(data, flush_incomplete=False) == [SSEEvent("message", "done")]
    assert parse_sse(b"data: tail\n", flush_incomplete=False) == []


def test_invalid_utf8_is_replaced() -> None:
    assert parse_sse(b"data: \xff\xfe\n\n") == [SSEEvent("message", "\ufffd\ufffd")]


def test_multibyte_character_split_across_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: \xe2\x82") == []
    assert parser.feed(b"\xac\n\n") == [SSEEvent("message", "€")]


def test_long_line_in_many_chunks() -> None:
    body = b"x" * 100_000
    events = feed_in_pieces(b"data: " + body + b"\n\n", 7)
    assert events == [SSEEvent("message", body.decode())]
