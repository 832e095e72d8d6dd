"""Outbound proxy selection from the environment, and what is never shown of it."""

from __future__ import annotations

import pytest

from simple_gateway.proxy.transport import Network, OutboundProxy, bypasses_proxy


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("localhost,127.0.0.1", "127.0.0.1", 443, True),
        ("localhost,127.0.0.1", "localhost", 80, True),
        (".example.com", "api.example.com", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("internal:8443", "internal", 443, False),
        ("internal:8443", "internal", 8443, True),
        ("*", "anything", 1, True),
        ("", "api.openai.com", 443, False),
    ],
)
def test_no_proxy_entries(no_proxy, host, port, bypass):
    assert bypasses_proxy(no_proxy, host, port) is bypass


def test_proxy_chosen_per_scheme_and_credentials_never_shown():
    env = {"HTTPS_PROXY": "http://u:p%40ss@proxy:3128", "no_proxy": "localhost"}
    network = Network.from_environment(env, None)
    proxy = network.proxy_for("https", "api.openai.com", None)
    assert proxy is not None and (proxy.host, proxy.port) == ("proxy", 3128)
    assert proxy.authorization == "Basic dTpwQHNz"  # u:p@ss
    assert "p@ss" not in repr(proxy) and "dTpw" not in repr(proxy) and "p@ss" not in str(proxy)
    assert network.proxy_for("http", "api.openai.com", None) is None
    assert network.proxy_for("https", "localhost", 8080) is None


def test_only_http_proxies_are_accepted():
    with pytest.raises(ValueError, match="http:// URL"):
        OutboundProxy.parse("socks5://proxy:1080")
