"""X-Forwarded-For is believed only from trusted proxies, read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from simple_gateway.proxy.client_addr import client_address

PROXIES = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("127.0.0.1", "203.0.113.9", (), "127.0.0.1"),  # no trusted proxies: never believed
        ("198.51.100.7", "203.0.113.9", PROXIES, "198.51.100.7"),  # not from a proxy
        ("127.0.0.1", "203.0.113.9", PROXIES, "203.0.113.9"),
        ("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3", PROXIES, "203.0.113.9"),  # spoofed left
        ("127.0.0.1", "10.0.0.2, 10.1.2.3", PROXIES, "10.0.0.2"),  # every hop a proxy
        ("127.0.0.1", "", PROXIES, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9, junk", PROXIES, "127.0.0.1"),  # malformed: stop there
        ("127.0.0.1", "203.0.113.9:4711", PROXIES, "203.0.113.9"),
        ("127.0.0.1", "[2001:db8::1]:443", PROXIES, "2001:db8::1"),
        ("::ffff:127.0.0.1", "203.0.113.9", PROXIES, "203.0.113.9"),
    ],
)
def test_client_address(peer, forwarded, trusted, expected):
    environ = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_address(environ, trusted) == expected
