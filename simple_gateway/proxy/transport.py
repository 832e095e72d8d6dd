"""How an upstream origin is reached: TLS trust and client certificate, outbound proxy.

A `Transport` is the part of a connection's identity beyond its origin: two providers
at the same origin but with different CA bundles, client certificates or proxies must
never share a pooled connection, so the pool keys connections by (origin, transport).

`Network` holds the process-wide defaults (UPSTREAM_CA_BUNDLE, HTTPS_PROXY, HTTP_PROXY,
NO_PROXY, read once when the gateway is built) and turns a provider's base URL and
its own TLS options into the Transport for it. Proxy credentials travel only in the
`Proxy-Authorization` value, which is kept out of every repr.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class OutboundProxy:
    """An HTTP proxy: CONNECT tunnels for https origins, absolute-form requests for http."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> OutboundProxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme.lower() != "http":
            raise ValueError(f"outbound proxy must be an http:// URL, got scheme '{parts.scheme}'")
        if not parts.hostname:
            raise ValueError("outbound proxy URL has no host")
        authorization = None
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(user_pass.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}"  # never the credentials


@dataclass(frozen=True)
class Transport:
    ca_bundle: str | None = None  # None: the system trust store
    client_cert: str | None = None
    client_key: str | None = None
    proxy: OutboundProxy | None = None

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.ca_bundle, self.client_cert, self.client_key)


DIRECT = Transport()


@cache
def tls_context(
    ca_bundle: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    """A verifying client context; cached, so every connection of a transport shares one."""
    context = ssl.create_default_context(cafile=ca_bundle)
    if client_cert:
        # A password-protected key fails here instead of prompting on the terminal.
        context.load_cert_chain(client_cert, client_key or None, password=_no_password)
    return context


def _no_password() -> str:
    raise ValueError("encrypted client keys are not supported; give an unencrypted key file")


@dataclass(frozen=True)
class Network:
    """Process-wide transport defaults, from the settings and the proxy environment."""

    ca_bundle: str | None = None
    proxies: Mapping[str, str] = field(default_factory=dict)  # scheme -> proxy URL, "no"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], ca_bundle: str | None) -> Network:
        """Read HTTPS_PROXY, HTTP_PROXY and NO_PROXY, upper or lower case (lower wins)."""
        proxies: dict[str, str] = {}
        for name in ("https", "http", "no"):
            for variant in (f"{name.upper()}_PROXY", f"{name}_proxy"):
                if environ.get(variant):
                    proxies[name] = environ[variant]
        return cls(ca_bundle or None, proxies)

    def transport_for(
        self,
        base_url: str,
        ca_bundle: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> Transport:
        """The transport for an upstream; raises ValueError or OSError for bad files."""
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        proxy = self.proxy_for(scheme, parts.hostname or "", parts.port)
        if scheme != "https":
            return Transport(proxy=proxy)
        transport = Transport(ca_bundle or self.ca_bundle, client_cert, client_key, proxy)
        transport.tls_context()  # load the files now: a bad path stops the start
        return transport

    def proxy_for(self, scheme: str, host: str, port: int | None) -> OutboundProxy | None:
        url = self.proxies.get(scheme)
        if not url:
            return None
        if bypasses_proxy(self.proxies.get("no", ""), host, port):
            return None
        return OutboundProxy.parse(url)


def bypasses_proxy(no_proxy: str, host: str, port: int | None) -> bool:
    """NO_PROXY as curl and requests read it: `*`, hosts, domain suffixes, `host:port`."""
    host = host.lower().strip("[]")
    for entry in no_proxy.lower().split(","):
        entry = entry.strip().lstrip(".")
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name.strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and (not head.count(":") or head.endswith("]"))
