"""Dot-segments are found in every spelling; ordinary paths pass."""

from __future__ import annotations

import pytest

from simple_gateway.proxy.paths import dot_segment, unsafe_path


@pytest.mark.parametrize(
    "path",
    [
        "/openai/../anthropic/v1/messages",
        "/openai/%2e%2e/anthropic/v1/messages",
        "/openai/%2E%2E/anthropic/v1/messages",
        "/openai/.%2e/x",
        "/v1/./chat/completions",
        "/v1/%2e/chat/completions",
        "/v1/chat/completions/..",
        "/openai/v1/..%2f..%2fadmin",
        "/openai/v1/..%5C..%5Cadmin",
        "/openai/v1/..\\admin",
        "/openai/v1/%252e%252e/admin",
    ],
)
def test_dot_segments_are_found(path: str) -> None:
    assert dot_segment(path) is not None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/models/gpt-4.1",
        "/v1/files/file..abc",
        "/ollama/v1/models/library%2Fllama3.1",
        "/v1/.well-known",
        "/",
        "",
    ],
)
def test_ordinary_paths_pass(path: str) -> None:
    assert dot_segment(path) is None


def test_the_raw_uri_is_checked_not_only_path_info() -> None:
    environ = {"RAW_URI": "/openai/%2e%2e/anthropic/v1/messages", "PATH_INFO": "/openai/x"}
    assert unsafe_path(environ) == "%2e%2e"
    assert unsafe_path({"RAW_URI": "http://h/v1/../x", "PATH_INFO": "/v1/../x"}) == ".."
