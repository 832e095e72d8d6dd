"""A form field found in a multipart body of any size, reading it in bounded chunks."""

from __future__ import annotations

import io

import pytest

from simple_gateway.records.multipart import boundary_of, form_field


def form(*parts: tuple[str, bytes, str | None], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        kind = b"Content-Type: audio/mpeg\r\n" if filename else b""
        out += f"--{boundary}\r\n{disposition}\r\n".encode() + kind + b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.largest = max(self.largest, len(chunk))
        return chunk


def test_a_field_after_a_large_file_is_found_in_bounded_reads() -> None:
    audio = b"\0" * 5_000_000 + b'name="model"\r\n\r\nnot-this'  # file bytes that look like a field
    body = CountingReader(form(("file", audio, "a.mp3"), ("model", b"whisper-1", None)))
    assert form_field(body.read, b"XyZ", "model") == "whisper-1"
    assert body.largest <= 256 * 1024


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            (("model", b"gpt-4o-transcribe", None), ("file", b"x" * 100, "a.mp3")),
            "gpt-4o-transcribe",
        ),
        ((("file", b"x" * 100, "a.mp3"),), None),
        ((("model", b"x" * 1000, None),), None),  # longer than any model name: not kept
        ((("model", b"whisper-1", "model.txt"),), None),  # a file named model is not the field
    ],
)
def test_fields(parts: tuple[tuple[str, bytes, str | None], ...], expected: str | None) -> None:
    assert form_field(io.BytesIO(form(*parts)).read, b"XyZ", "model") == expected


def test_boundary_of() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of("application/json") is None
    assert boundary_of("multipart/form-data") is None
