"""How stored exchanges are shown: base64 collapsed, secrets masked, curl safe to paste."""

from __future__ import annotations

import json
import shlex

from simple_gateway.dashboard.render import collapse_base64, curl_command, mask_headers, pretty_body


def test_base64_is_collapsed_with_its_size() -> None:
    image = "data:image/png;base64," + "A" * 4000
    body = json.dumps({"data": [{"b64_json": "B" * 4000}], "input": [{"image_url": image}]})
    shown = pretty_body(body, "application/json")
    assert "AAAA" not in shown and "BBBB" not in shown
    assert "image/png, 2.9 KB base64 collapsed" in shown
    assert collapse_base64("short text stays") == "short text stays"


def test_headers_are_masked_again_even_if_stored_in_clear() -> None:
    headers = mask_headers(
        json.dumps(
            {"authorization": "Bearer sk-live-123456789abcdef", "x-note": "sk-abcdefghijklmnop"}
        )
    )
    shown = dict(headers)
    assert shown["authorization"].startswith("[REDACTED]")
    assert "sk-abcdefghijklmnop" not in shown["x-note"]


def test_curl_replaces_the_key_and_quotes_everything_else() -> None:
    row = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "query": "",
        "request_headers": json.dumps(
            {
                "authorization": "[REDACTED] sha256:12345678",
                "x-`touch pwned`": "$(rm -rf ~)",
                "content-length": "12",
            }
        ),
        "request_body": '{"a": "it\'s $(id)"}',
        "request_body_truncated": False,
    }
    command = curl_command("http://127.0.0.1:8080/", row)
    assert '"$API_KEY"' in command
    assert "content-length" not in command
    words = shlex.split(command.replace("\\\n", " "))
    assert "x-`touch pwned`: $(rm -rf ~)" in words  # a literal argument, never run
    assert '{"a": "it\'s $(id)"}' in words
