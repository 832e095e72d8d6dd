from simple_gateway.redaction import fingerprint, is_secret_name, redact_headers, redact_query


def test_secret_names():
    for name in (
        "Authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "Cookie",
        "Set-Cookie",
        "Proxy-Authorization",
        "access_token",
        "client_secret",
        "apiKey",
        "X-Auth-Token",
    ):
        assert is_secret_name(name), name
    for name in (
        "content-type",
        "max_tokens",
        "x-ratelimit-remaining-tokens",
        "anthropic-version",
        "openai-organization",
        "user-agent",
    ):
        assert not is_secret_name(name), name


def test_headers_are_redacted_with_a_fingerprint():
    headers = redact_headers([("Authorization", "Bearer sk-1"), ("Accept", "a"), ("Accept", "b")])
    assert headers["authorization"] == f"[REDACTED] sha256:{fingerprint('Bearer sk-1')}"
    assert headers["accept"] == "a, b"
    assert redact_headers({"x-api-key": "k1"}) != redact_headers({"x-api-key": "k2"})


def test_query_keeps_its_encoding_but_not_its_secrets():
    redacted = redact_query("a=%2F&key=sk-abc&b=1+2&api_key=&token=t")
    assert redacted.startswith("a=%2F&key=[REDACTED]%20sha256:")
    assert "sk-abc" not in redacted and "&b=1+2&" in redacted
    assert redact_query("plain=1") == "plain=1"
