import base64
import gzip
import hashlib
import json
import logging
import os
import sys
import time
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simple_gateway.ids import new_id
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.cost import PriceTable
from simple_gateway.records.enrich import (
    Enricher,
    content_decoders,
    decode_content,
    image_type,
)
from simple_gateway.records.model import BodyCapture, Record
from simple_gateway.records.usage import Usage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200)

CHAT_REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hi"}]}
CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "total_tokens": 2100,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
GPT_4O_COST = round(((2000 - 1024) * 2.50 + 1024 * 1.25 + 100 * 10.00) / 1e6, 8)


def as_json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def body(data: bytes, content_type: str | None = "application/json", **kw: Any) -> BodyCapture:
    return BodyCapture(inline=data, size=len(data), content_type=content_type, **kw)


def make_record(
    request: BodyCapture, response: BodyCapture, status: int = 200, provider: str = "openai"
) -> Record:
    return Record(
        id=new_id(),
        request_id="req-1",
        started_at=time.time(),
        provider=provider,
        method="POST",
        path="/v1/chat/completions",
        status=status,
        request_body=request,
        response_body=response,
    )


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "files")


@pytest.fixture
def enrich(blobs: BlobStore) -> Enricher:
    return Enricher(blobs, PriceTable.load())


def assert_chat_enriched(record: Record) -> None:
    assert record.model == "gpt-4o"
    assert record.response_text == "Hi!"
    assert (record.input_tokens, record.output_tokens) == (2000, 100)
    assert (record.cached_tokens, record.reasoning_tokens) == (1024, 0)
    assert record.usage_source == "response.body"
    assert (record.cost_usd, record.cost_status) == (GPT_4O_COST, "priced")
    assert record.stream is False


def test_plain_openai_chat(enrich: Enricher) -> None:
    record = make_record(body(as_json(CHAT_REQUEST)), body(as_json(CHAT_RESPONSE)))
    enrich(record)
    assert_chat_enriched(record)
    assert record.response_body.inline == as_json(CHAT_RESPONSE)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
        ("gzip, identity", gzip.compress),
    ],
)
def test_compressed_response_is_decoded_and_inline_made_readable(
    enrich: Enricher, encoding: str, compress: Any
) -> None:
    plain = as_json(CHAT_RESPONSE)
    record = make_record(
        body(as_json(CHAT_REQUEST)), body(compress(plain), content_encoding=encoding)
    )
    enrich(record)
    assert_chat_enriched(record)
    assert record.response_body.inline == plain
    assert record.response_body.truncated is False
    assert record.response_body.content_encoding == encoding


def test_decoded_inline_is_capped(blobs: BlobStore) -> None:
    plain = as_json({**CHAT_RESPONSE, "pad": "x" * 5000})
    record = make_record(
        body(as_json(CHAT_REQUEST)), body(gzip.compress(plain), content_encoding="gzip")
    )
    Enricher(blobs, PriceTable.load(), inline_limit=1000)(record)
    assert record.response_body.inline == plain[:1000]
    assert record.response_body.truncated is True
    assert record.input_tokens == 2000  # parsed from the whole decoded body, not the capped copy


def test_gzip_bomb_is_bounded(blobs: BlobStore) -> None:
    bomb = gzip.compress(b"{" + b" " * 5_000_000)
    record = make_record(body(as_json(CHAT_REQUEST)), body(bomb, content_encoding="gzip"))
    Enricher(blobs, PriceTable.load(), parse_limit=1_000_000, inline_limit=100)(record)
    assert record.response_body.inline == b"{" + b" " * 99
    assert record.response_body.truncated is True
    assert record.usage_source == "none"
    assert decode_content(bomb, "gzip", 1000) == (b"{" + b" " * 999, False)


def test_corrupt_or_unknown_encoding_leaves_the_capture_alone(enrich: Enricher) -> None:
    record = make_record(
        body(as_json(CHAT_REQUEST)), body(b"\x1f\x8bnot gzip", content_encoding="gzip")
    )
    other = make_record(body(as_json(CHAT_REQUEST)), body(b"??", content_encoding="compress"))
    enrich(record)
    enrich(other)
    assert record.response_body.inline == b"\x1f\x8bnot gzip"
    assert other.response_body.inline == b"??"
    assert record.model == "gpt-4o" and record.usage_source == "none"


def test_truncated_inline_with_file_is_parsed_from_the_file(
    enrich: Enricher, blobs: BlobStore
) -> None:
    plain = as_json({**CHAT_RESPONSE, "pad": "x" * 1000})
    compressed = gzip.compress(plain)
    record = make_record(body(as_json(CHAT_REQUEST)), BodyCapture())
    ref = blobs.save(compressed, record.id, "openai", "response", "application/json")
    record.response_body = BodyCapture(
        inline=compressed[:50],
        truncated=True,
        size=len(compressed),
        content_type="application/json",
        content_encoding="gzip",
        file=ref,
    )
    enrich(record)
    assert_chat_enriched(record)
    assert record.response_body.inline == plain
    assert record.response_body.truncated is False


def test_truncated_request_with_file_gives_the_model(enrich: Enricher, blobs: BlobStore) -> None:
    request = as_json({"messages": [{"role": "user", "content": "x" * 2000}], "model": "gpt-4o"})
    record = make_record(BodyCapture(), body(as_json(CHAT_RESPONSE)))
    ref = blobs.save(request, record.id, "openai", "request", "application/json")
    record.request_body = body(request[:100], truncated=True, file=ref)
    record.request_body.size = len(request)
    enrich(record)
    assert record.model == "gpt-4o"
    assert record.request_body.inline == request[:100]  # not compressed: left as captured


def test_truncated_without_file_or_over_the_limit_is_not_parsed(
    blobs: BlobStore,
) -> None:
    plain = as_json(CHAT_RESPONSE)
    no_file = make_record(body(as_json(CHAT_REQUEST)), body(plain[:40], truncated=True))
    no_file.response_body.size = len(plain)
    big = make_record(body(as_json(CHAT_REQUEST)), BodyCapture())
    ref = blobs.save(plain, big.id, "openai", "response", "application/json")
    big.response_body = body(plain[:40], truncated=True, file=ref)
    big.response_body.size = len(plain)
    enrich = Enricher(blobs, PriceTable.load(), parse_limit=len(plain) - 1)
    for record in (no_file, big):
        enrich(record)
        assert record.input_tokens is None
        assert record.usage_source == "none"
        assert record.cost_status == "no_usage" and record.cost_usd is None
        assert record.model == "gpt-4o"


def openai_stream() -> bytes:
    def chunk(delta: dict[str, Any], usage: Any = None, choices: bool = True) -> bytes:
        obj = {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if choices else [],
            "usage": usage,
        }
        return b"data: " + as_json(obj) + b"\n\n"

    return (
        chunk({"role": "assistant", "content": ""})
        + chunk({"content": "Hello"})
        + chunk({"content": " world"})
        + chunk({}, {"prompt_tokens": 12, "completion_tokens": 2}, choices=False)
        + b"data: [DONE]\n\n"
    )


def test_openai_stream(enrich: Enricher) -> None:
    request = as_json(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [],
        }
    )
    record = make_record(body(request), body(openai_stream(), "text/event-stream; charset=utf-8"))
    enrich(record)
    assert record.stream is True
    assert record.model == "gpt-4o-mini"
    assert record.response_text == "Hello world"
    assert (record.input_tokens, record.output_tokens) == (12, 2)
    assert record.usage_source == "stream.final_event"
    assert record.cost_status == "priced"
    assert record.cost_usd == round((12 * 0.15 + 2 * 0.60) / 1e6, 8)


def test_stream_detected_without_content_type_when_requested(enrich: Enricher) -> None:
    request = as_json({"model": "gpt-4o-mini", "stream": True})
    record = make_record(
        body(request), body(gzip.compress(openai_stream()), None, content_encoding="gzip")
    )
    enrich(record)
    assert record.response_text == "Hello world"
    assert record.response_body.inline.startswith(b"data: {")


ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-5-20250929",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 3000,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 40}},
    {"type": "message_stop"},
]
ANTHROPIC_STREAM = b"".join(
    b"event: " + e["type"].encode() + b"\ndata: " + as_json(e) + b"\n\n" for e in ANTHROPIC_EVENTS
)


def test_anthropic_stream_without_model_in_request(enrich: Enricher) -> None:
    request = as_json({"stream": True, "max_tokens": 100, "messages": []})
    record = make_record(
        body(request), body(ANTHROPIC_STREAM, "text/event-stream"), provider="anthropic"
    )
    enrich(record)
    assert record.model == "claude-sonnet-4-5-20250929"
    assert record.response_text == "Bonjour"
    assert (record.input_tokens, record.cached_tokens, record.output_tokens) == (4010, 3000, 40)
    expected = round(((4010 - 3000) * 3.00 + 3000 * 0.30 + 40 * 15.00) / 1e6, 8)
    assert (record.cost_usd, record.cost_status) == (expected, "priced")


def test_model_from_response_only_when_request_has_none(enrich: Enricher) -> None:
    record = make_record(body(b"", None), body(as_json(CHAT_RESPONSE)))
    enrich(record)
    assert record.model == "gpt-4o-2024-08-06"
    assert record.cost_status == "priced"


def test_unpriced_model_has_no_cost(enrich: Enricher) -> None:
    request = as_json({**CHAT_REQUEST, "model": "llama3.2:3b"})
    record = make_record(body(request), body(as_json({**CHAT_RESPONSE, "model": "llama3.2:3b"})))
    enrich(record)
    assert record.input_tokens == 2000
    assert record.cost_usd is None
    assert record.cost_status == "unpriced"


def test_error_response_has_no_usage_source(enrich: Enricher) -> None:
    error = as_json({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
    record = make_record(body(as_json(CHAT_REQUEST)), body(error), status=401)
    enrich(record)
    assert record.usage_source is None
    assert (record.cost_usd, record.cost_status) == (None, "no_usage")
    assert record.response_text is None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_images_api_b64_json_lands_as_a_file(enrich: Enricher, blobs: BlobStore) -> None:
    response = {
        "created": 1,
        "data": [
            {"b64_json": base64.b64encode(PNG).decode()},
            {"b64_json": base64.b64encode(JPEG).decode()},
        ],
        "usage": {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170},
    }
    request = as_json({"model": "gpt-image-1", "prompt": "a cat"})
    record = make_record(body(request), body(as_json(response)))
    enrich(record)
    assert [f.content_type for f in record.files] == ["image/png", "image/jpeg"]
    png = record.files[0]
    assert png.kind == "image" and png.direction == "response" and png.record_id == record.id
    assert png.path.endswith("-image-1.png")
    assert png.sha256 == sha(PNG) == sha(blobs.path_of(png).read_bytes())
    assert png.size == len(PNG)
    assert record.output_tokens == 4160
    assert record.cost_status == "unpriced"
    enrich(record)
    assert len(record.files) == 2  # enriching again does not duplicate files


def test_responses_image_call_and_data_uris(enrich: Enricher) -> None:
    gif = b"GIF89a" + bytes(30)
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(30)
    response = {
        "object": "response",
        "model": "gpt-5",
        "output": [
            {
                "type": "image_generation_call",
                "id": "ig_1",
                "status": "completed",
                "result": base64.b64encode(gif).decode(),
            },
            {
                "type": "message",
                "content": [
                    {"type": "output_text", "text": "Here: data:image/png;base64,notreally"}
                ],
            },
        ],
        "extra": {"nested": [{"url": "data:image/webp;base64," + base64.b64encode(webp).decode()}]},
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }
    record = make_record(body(as_json({"model": "gpt-5"})), body(as_json(response)))
    enrich(record)
    assert [(f.content_type, f.sha256) for f in record.files] == [
        ("image/gif", sha(gif)),
        ("image/webp", sha(webp)),
    ]


def test_images_in_a_responses_stream_are_saved_once(enrich: Enricher) -> None:
    partial = b"\x89PNG\r\n\x1a\npartial"
    final = PNG
    item = {
        "type": "image_generation_call",
        "id": "ig_1",
        "result": base64.b64encode(final).decode(),
    }
    events = [
        {
            "type": "response.image_generation_call.partial_image",
            "partial_image_index": 0,
            "partial_image_b64": base64.b64encode(partial).decode(),
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {
            "type": "response.completed",
            "response": {
                "object": "response",
                "model": "gpt-5",
                "output": [item],
                "usage": {"input_tokens": 3, "output_tokens": 4},
            },
        },
    ]
    transcript = b"".join(b"data: " + as_json(e) + b"\n\n" for e in events)
    record = make_record(
        body(as_json({"model": "gpt-5", "stream": True})), body(transcript, "text/event-stream")
    )
    enrich(record)
    assert [f.sha256 for f in record.files] == [sha(partial), sha(final)]
    assert record.usage_source == "stream.final_event"


def test_images_in_the_request_are_not_saved(enrich: Enricher) -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    request = as_json(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]}
            ],
        }
    )
    record = make_record(body(request), body(as_json(CHAT_RESPONSE)))
    enrich(record)
    assert record.files == []


class BrokenPrices(PriceTable):
    def cost(self, model: str | None, usage: Usage | None) -> tuple[float | None, str]:
        raise RuntimeError("price table on fire")


def test_a_failing_step_is_logged_and_the_others_still_run(
    blobs: BlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    response = {**CHAT_RESPONSE, "data": [{"b64_json": base64.b64encode(PNG).decode()}]}
    record = make_record(body(as_json(CHAT_REQUEST)), body(as_json(response)))
    with caplog.at_level(logging.WARNING):
        Enricher(blobs, BrokenPrices({}))(record)
    assert record.cost_status is None
    assert record.input_tokens == 2000
    assert len(record.files) == 1
    assert any(record.id in r.getMessage() and "cost" in r.getMessage() for r in caplog.records)


def test_missing_file_is_contained(enrich: Enricher, blobs: BlobStore) -> None:
    record = make_record(body(as_json(CHAT_REQUEST)), BodyCapture())
    ref = blobs.save(b"{}", record.id, "openai", "response", "application/json")
    os.unlink(blobs.path_of(ref))
    record.response_body = body(b"{", truncated=True, file=ref)
    enrich(record)
    assert record.model == "gpt-4o"
    assert record.cost_status == "no_usage"


def test_image_type_by_magic() -> None:
    assert image_type(PNG) == "image/png"
    assert image_type(JPEG) == "image/jpeg"
    assert image_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "application/octet-stream"
    assert image_type(b"") == "application/octet-stream"


class FakeBrotliDecompressor:
    """Stands in for brotli >= 1.2 (bounded output), using zlib underneath."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj()

    def process(self, data: bytes, max_output_length: int = 0) -> bytes:
        return self._d.decompress(data, max_output_length)

    def is_finished(self) -> bool:
        return self._d.eof

    def can_accept_more_data(self) -> bool:
        return True


class OldBrotliDecompressor:
    def process(self, data: bytes) -> bytes:
        raise AssertionError("an unbounded decoder must not be used")


@pytest.fixture
def fresh_decoders() -> Iterator[None]:
    content_decoders.cache_clear()
    yield
    content_decoders.cache_clear()


def test_br_is_decoded_only_with_a_bounded_brotli(
    monkeypatch: pytest.MonkeyPatch, fresh_decoders: None
) -> None:
    data = zlib.compress(b"x" * 5000)
    monkeypatch.setitem(sys.modules, "brotli", None)
    assert decode_content(data, "br", 100) is None
    content_decoders.cache_clear()
    monkeypatch.setitem(
        sys.modules, "brotli", types.SimpleNamespace(Decompressor=OldBrotliDecompressor)
    )
    assert decode_content(data, "br", 100) is None
    content_decoders.cache_clear()
    monkeypatch.setitem(
        sys.modules, "brotli", types.SimpleNamespace(Decompressor=FakeBrotliDecompressor)
    )
    assert decode_content(data, "br", 100) == (b"x" * 100, False)
    assert decode_content(data, "br", 10_000) == (b"x" * 5000, True)


class FakeZstdDecompressor:
    def __init__(self) -> None:
        self._d = zlib.decompressobj()
        self.eof = False

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._d.decompress(data, max_length)
        self.eof = self._d.eof
        return out


def test_zstd_uses_the_standard_library_module_when_present(
    monkeypatch: pytest.MonkeyPatch, fresh_decoders: None
) -> None:
    package = types.ModuleType("compression")
    package.zstd = types.SimpleNamespace(ZstdDecompressor=FakeZstdDecompressor)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "compression", package)
    data = zlib.compress(b"{}" * 100)
    assert decode_content(data, "zstd", 1000) == (b"{}" * 100, True)
    assert decode_content(data, "zstd", 10) == (b"{}" * 5, False)
    content_decoders.cache_clear()
    monkeypatch.setitem(sys.modules, "compression", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    assert decode_content(data, "zstd", 1000) is None
