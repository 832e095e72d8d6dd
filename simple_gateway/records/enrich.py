"""Fill a record's derived fields (model, usage, text, cost, images) from its captured bodies.

Runs in the writer thread, after the client has its answer, and only reads what
the tee captured; nothing here touches the bytes the client received. Each step
is contained: a step that raises is logged with the record id and the others
still run, so a record is always written, with whatever could be derived.

Bodies are read whole only up to `parse_limit` bytes, compressed or decoded;
decompression is bounded by output size, so a small gzip bomb stays small.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from simple_gateway.proxy.sse import SSEEvent, parse_sse
from simple_gateway.records.blobs import BlobStore
from simple_gateway.records.cost import PriceTable
from simple_gateway.records.model import BodyCapture, Record
from simple_gateway.records.multipart import boundary_of, form_field
from simple_gateway.records.usage import (
    Usage,
    model_from_json,
    summarise_stream,
    text_from_json,
    usage_from_json,
)

logger = logging.getLogger(__name__)

# (data, limit) -> (decoded, complete); complete is False when the output hit the limit
# or the input stopped mid-stream. Raises on corrupt input.
Decoder = Callable[[bytes, int], tuple[bytes, bool]]

_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")
_IMAGE_HINTS = ("b64_json", "partial_image_b64", "image_generation_call", "data:image/")
_IMAGE_HINTS_BYTES = tuple(hint.encode() for hint in _IMAGE_HINTS)
_IMAGE_KEYS = ("b64_json", "partial_image_b64")
_MAX_DEPTH = 64
_MAX_IMAGES = 64
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),  # after "RIFF" and a length
)


@dataclass
class _Work:
    """What one step hands the next."""

    request: bytes | None = None
    response: bytes | None = None
    response_json: Any = None
    events: list[SSEEvent] | None = None
    usage: Usage | None = None


class Enricher:
    def __init__(
        self,
        blobs: BlobStore,
        prices: PriceTable,
        parse_limit: int = 16 * 1024 * 1024,
        inline_limit: int = 256 * 1024,
    ) -> None:
        self.blobs = blobs
        self.prices = prices
        self.parse_limit = parse_limit
        self.inline_limit = inline_limit
        self._steps = (
            self._request_body,
            self._response_body,
            self._read_request,
            self._read_form,
            self._read_response,
            self._apply_usage,
            self._apply_cost,
            self._save_images,
        )

    def __call__(self, record: Record) -> None:
        work = _Work()
        for step in self._steps:
            try:
                step(record, work)
            except Exception:
                logger.warning(
                    "enrichment step %s failed for record %s",
                    step.__name__.lstrip("_"),
                    record.id,
                    exc_info=True,
                )

    def _request_body(self, record: Record, work: _Work) -> None:
        work.request = self._body_bytes(record.request_body)

    def _response_body(self, record: Record, work: _Work) -> None:
        work.response = self._body_bytes(record.response_body)

    def _body_bytes(self, capture: BodyCapture) -> bytes | None:
        """The whole decoded body, or None when it is not all at hand.

        A compressed inline copy is replaced by its decoded text, so the database
        holds something a person can read.
        """
        raw, whole = self._raw_bytes(capture)
        if not raw:
            return None
        encoding = (capture.content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            return raw if whole else None
        decoded = decode_content(raw, encoding, self.parse_limit)
        if decoded is None:
            return None
        text, complete = decoded
        if capture.inline:
            capture.inline = text[: self.inline_limit]
            capture.truncated = len(text) > self.inline_limit or not (whole and complete)
        return text if whole and complete else None

    def _raw_bytes(self, capture: BodyCapture) -> tuple[bytes, bool]:
        """The captured bytes and whether they are the whole body."""
        if not capture.truncated:
            return capture.inline, True
        if capture.file is not None and capture.size <= self.parse_limit:
            try:
                with self.blobs.path_of(capture.file).open("rb") as f:
                    data = f.read(self.parse_limit + 1)
            except OSError:
                logger.warning("body file %s unreadable", capture.file.path, exc_info=True)
            else:
                if len(data) <= self.parse_limit:
                    return data, True
        return capture.inline, False

    def _read_request(self, record: Record, work: _Work) -> None:
        obj = _json(work.request, record.request_body.content_type)
        if not isinstance(obj, dict):
            return
        if isinstance(obj.get("model"), str) and obj["model"]:
            record.model = record.model or obj["model"]  # a routed exchange names its deployment's
        if obj.get("stream") is True:
            record.stream = True

    def _read_form(self, record: Record, work: _Work) -> None:
        """The `model` field of a multipart form (audio transcriptions, translations)."""
        capture = record.request_body
        boundary = boundary_of(capture.content_type)
        if boundary is None or record.model or capture.content_encoding:
            return
        if capture.file is not None:
            with self.blobs.path_of(capture.file).open("rb") as body:
                record.model = form_field(body.read, boundary, "model")
        elif capture.inline and not capture.truncated:
            record.model = form_field(io.BytesIO(capture.inline).read, boundary, "model")

    def _read_response(self, record: Record, work: _Work) -> None:
        data = work.response
        if data is None:
            return
        mime = _mime(record.response_body.content_type)
        if mime == "text/event-stream" or (record.stream and _looks_like_sse(data)):
            work.events = parse_sse(data)
            summary = summarise_stream(work.events)
            work.usage = summary.usage
            record.response_text = summary.text or None
            record.model = record.model or summary.model
            record.stream = True
            return
        obj = _json(data, record.response_body.content_type)
        if obj is None:
            return
        work.response_json = obj
        work.usage = usage_from_json(obj)
        record.response_text = text_from_json(obj)
        record.model = record.model or model_from_json(obj)

    def _apply_usage(self, record: Record, work: _Work) -> None:
        usage = work.usage
        if usage is None:
            if record.status is not None and 200 <= record.status < 300:
                record.usage_source = "none"
            return
        record.input_tokens = usage.input_tokens
        record.output_tokens = usage.output_tokens
        record.cached_tokens = usage.cached_tokens
        record.reasoning_tokens = usage.reasoning_tokens
        record.usage_source = usage.source

    def _apply_cost(self, record: Record, work: _Work) -> None:
        record.cost_usd, record.cost_status = self.prices.cost(record.model, work.usage)

    def _save_images(self, record: Record, work: _Work) -> None:
        if not _may_hold_images(work) or any(f.kind == "image" for f in record.files):
            return  # no image in sight, or enriched before and the images are already files
        seen: set[str] = set()
        for encoded in _image_payloads(work):
            if len(seen) >= _MAX_IMAGES:
                break
            try:
                data = base64.b64decode(encoded)
            except ValueError:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if not data or digest in seen:
                continue  # a Responses stream repeats the final image in its last event
            seen.add(digest)
            try:
                ref = self.blobs.save(
                    data,
                    record_id=record.id,
                    provider=record.provider,
                    direction="response",
                    content_type=image_type(data),
                    kind="image",
                    suffix=f"-image-{len(seen)}",
                )
            except OSError as exc:
                record.notes.append(f"response images not kept on disk: {exc.strerror or exc}")
                self.blobs.errors.error(
                    f"{type(exc).__name__}:{exc.errno}",
                    "cannot keep images of %s on disk: %s",
                    record.id,
                    exc,
                )
                return
            record.files.append(ref)


@lru_cache(maxsize=256)
def _mime(content_type: str | None) -> str:
    """The media type of a Content-Type; cached, as a few values come back all the time."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _json(data: bytes | None, content_type: str | None) -> Any:
    """The parsed body when it is JSON, else None."""
    if not data:
        return None
    if "json" not in _mime(content_type) and data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(_utf8_text(data) or data)
    except ValueError:
        return None


def _utf8_text(data: bytes) -> str | None:
    """The text of a body `json.loads` would read as UTF-8, decoded as it would; else None.

    A body that opens with `{` or `[` and no NUL after it has no byte-order mark and is not
    UTF-16 or UTF-32, which is all json's encoding detection (a Python function) looks for.
    """
    if data[:1] in (b"{", b"[") and data[1:2] != b"\x00":
        return data.decode("utf-8", "surrogatepass")
    return None


def _looks_like_sse(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_SSE_STARTS)


def _may_hold_images(work: _Work) -> bool:
    """Whether the response could hold images: two scans of its bytes before any walk.

    Every hint but b64_json holds "image"; a scan of a body costs a quarter of parsing it,
    so the four hints are not looked for one by one in every response.
    """
    if work.response_json is not None and work.response is not None:
        return b"image" in work.response or b"b64_json" in work.response
    return bool(work.events)


def _has_image_hint(data: bytes) -> bool:
    return any(map(data.__contains__, _IMAGE_HINTS_BYTES))


def _image_payloads(work: _Work) -> Iterator[str]:
    """Base64 images in the response JSON, or in the events of a stream."""
    if work.response_json is not None and work.response is not None:
        if _has_image_hint(work.response):
            yield from _walk_images(work.response_json, 0)
        return
    for event in work.events or ():
        if any(hint in event.data for hint in _IMAGE_HINTS):
            try:
                obj = json.loads(event.data)
            except ValueError:
                continue
            yield from _walk_images(obj, 0)


def _walk_images(obj: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(obj, dict):
        if obj.get("type") == "image_generation_call" and isinstance(obj.get("result"), str):
            yield obj["result"]
        for key, value in obj.items():
            if key in _IMAGE_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _walk_images(value, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk_images(value, depth + 1)
    elif isinstance(obj, str) and obj.startswith("data:image/"):
        header, sep, payload = obj.partition(",")
        if sep and header.endswith(";base64"):
            yield payload


def image_type(data: bytes) -> str:
    """The MIME type of an image from its first bytes."""
    for magic, offset, mime in _MAGIC:
        if data.startswith(magic, offset) and (mime != "image/webp" or data.startswith(b"RIFF")):
            return mime
    return "application/octet-stream"


def decode_content(data: bytes, encoding: str, limit: int) -> tuple[bytes, bool] | None:
    """Undo a Content-Encoding (a list applies in order, so it is undone in reverse).

    Returns at most `limit` bytes and whether that is the whole body; None when an
    encoding is unknown, its library is not installed, or the data is corrupt.
    """
    decoders = content_decoders()
    complete = True
    for name in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        if name == "identity":
            continue
        decoder = decoders.get(name)
        if decoder is None:
            return None
        try:
            data, done = decoder(data, limit)
        except Exception:
            return None
        complete = complete and done
    return data, complete


def _zlib(data: bytes, limit: int, wbits: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    total = 0
    while data:  # more than once only for a gzip body of several members
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, limit + 1 - total)
        parts.append(out)
        total += len(out)
        if total > limit or not d.eof:
            return b"".join(parts)[:limit], False
        data = d.unused_data if wbits > zlib.MAX_WBITS else b""
    return b"".join(parts), True


def _gzip(data: bytes, limit: int) -> tuple[bytes, bool]:
    return _zlib(data, limit, 16 + zlib.MAX_WBITS)


def _deflate(data: bytes, limit: int) -> tuple[bytes, bool]:
    """HTTP "deflate" should be zlib-wrapped, but some servers send raw deflate."""
    try:
        return _zlib(data, limit, zlib.MAX_WBITS)
    except zlib.error:
        return _zlib(data, limit, -zlib.MAX_WBITS)


def _brotli_decoder() -> Decoder | None:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        return None
    if not hasattr(brotli.Decompressor(), "can_accept_more_data"):
        return None  # too old to bound its output

    def decode(data: bytes, limit: int) -> tuple[bytes, bool]:
        d = brotli.Decompressor()
        out = d.process(data, max_output_length=limit + 1)
        if len(out) > limit:
            return out[:limit], False
        return out, bool(d.is_finished())

    return decode


def _zstd_decoder() -> Decoder | None:
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        return _zstandard_decoder()

    def decode(data: bytes, limit: int) -> tuple[bytes, bool]:
        d = zstd.ZstdDecompressor()
        out = d.decompress(data, max_length=limit + 1)
        return (out[:limit], False) if len(out) > limit else (out, bool(d.eof))

    return decode


def _zstandard_decoder() -> Decoder | None:
    """The `zstandard` package, for Pythons before 3.14 and its `compression.zstd`."""
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        return None

    def decode(data: bytes, limit: int) -> tuple[bytes, bool]:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        parts: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = reader.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        out = b"".join(parts)
        return (out[:limit], False) if total > limit else (out, True)

    return decode


@cache
def content_decoders() -> dict[str, Decoder]:
    """Decoders by Content-Encoding name; br and zstd only when their library is installed."""
    decoders: dict[str, Decoder] = {"gzip": _gzip, "x-gzip": _gzip, "deflate": _deflate}
    for name, factory in (("br", _brotli_decoder), ("zstd", _zstd_decoder)):
        decoder = factory()
        if decoder is not None:
            decoders[name] = decoder
    return decoders
