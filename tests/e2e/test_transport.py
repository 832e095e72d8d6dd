"""Real transport: HTTPS verified against a CA the test makes, client certificates, and an
outbound HTTP proxy (CONNECT for https, absolute-form for http) with NO_PROXY honoured."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import trustme

from tests.gateway import GatewayProcess
from tests.provider_mocks import ConnectProxy, ProviderMock


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    return context


@pytest.fixture
def tls_mock(ca: trustme.CA) -> Iterator[ProviderMock]:
    with ProviderMock(tls=server_context(ca)) as server:
        yield server


def start(
    start_gateway: Callable[..., GatewayProcess], tmp_path: Path, yaml: str, **env: str
) -> GatewayProcess:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml)
    return start_gateway({"GATEWAY_CONFIG": str(config), **env})


def test_https_upstream_is_verified_against_the_configured_ca(
    start_gateway, tls_mock, ca, tmp_path
):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yaml = f"providers:\n  secure: {{type: compatible, base_url: '{tls_mock.url}'}}\n"
    trusted = start(start_gateway, tmp_path, yaml, UPSTREAM_CA_BUNDLE=str(ca_file))
    response = requests.get(f"{trusted.url}/secure/echo/hello")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/echo/hello"

    # Without the CA the system trust store is used, and it does not know the test's CA.
    untrusted = start_gateway({"GATEWAY_CONFIG": str(tmp_path / "gateway.yaml")}, name="gw2")
    refused = requests.get(f"{untrusted.url}/secure/echo/hello")
    assert refused.status_code == 502
    assert "certificate" in refused.json()["error"]["message"].lower()


def test_client_certificates_per_provider_and_pools_kept_apart(start_gateway, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_pem = tmp_path / "client.pem"
    ca.issue_cert("gateway@example.com").private_key_and_cert_chain_pem.write_to_path(
        str(client_pem)
    )
    with ProviderMock(tls=server_context(ca, require_client_cert=True)) as mtls:
        yaml = (
            "providers:\n"
            f"  withcert: {{type: compatible, base_url: '{mtls.url}',"
            f" client_cert: '{client_pem}'}}\n"
            f"  nocert: {{type: compatible, base_url: '{mtls.url}'}}\n"
        )
        gateway = start(start_gateway, tmp_path, yaml, UPSTREAM_CA_BUNDLE=str(ca_file))
        for _ in range(2):  # the second pair reuses pooled connections: never the other's
            assert requests.get(f"{gateway.url}/withcert/echo").status_code == 200
            assert requests.get(f"{gateway.url}/nocert/echo").status_code == 502


def test_outbound_proxy_tunnels_https_forwards_http_and_honours_no_proxy(
    start_gateway, ca, tmp_path
):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    # The mocks close before the proxy does, so no connection dies under them mid-TLS.
    with (
        ConnectProxy(credentials="proxyuser:pr0xy-s3cret") as proxy,
        ProviderMock() as plain,
        ProviderMock(tls=server_context(ca)) as tls_mock,
    ):
        port = tls_mock.url.rsplit(":", 1)[1]
        yaml = (
            "providers:\n"
            f"  viaproxy: {{type: compatible, base_url: '{tls_mock.url}'}}\n"
            f"  direct: {{type: compatible, base_url: 'https://localhost:{port}'}}\n"
            f"  plainhttp: {{type: compatible, base_url: '{plain.url}'}}\n"
        )
        proxy_url = f"http://proxyuser:pr0xy-s3cret@127.0.0.1:{proxy.port}"
        gateway = start(
            start_gateway,
            tmp_path,
            yaml,
            UPSTREAM_CA_BUNDLE=str(ca_file),
            HTTPS_PROXY=proxy_url,
            HTTP_PROXY=proxy_url,
            NO_PROXY="localhost,example.internal",
        )
        assert requests.get(f"{gateway.url}/viaproxy/echo/a").status_code == 200
        assert requests.get(f"{gateway.url}/direct/echo/b").status_code == 200
        response = requests.get(f"{gateway.url}/plainhttp/echo/c?x=1")
        assert response.status_code == 200
        assert "proxy-authorization" not in response.json()["headers"]

        methods = [(method, target) for method, target, _ in proxy.requests]
        assert ("CONNECT", f"127.0.0.1:{port}") in methods
        assert ("GET", f"{plain.url}/echo/c?x=1") in methods
        assert not [t for _, t in methods if "localhost" in t]  # NO_PROXY: straight there
        assert all(auth and auth.startswith("Basic ") for _, _, auth in proxy.requests)
        shown = requests.get(f"{gateway.url}/status").text + gateway.logs()
        assert "pr0xy-s3cret" not in shown


def test_proxy_refusing_the_credentials_is_a_502(start_gateway, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with (
        ConnectProxy(credentials="right:creds") as proxy,
        ProviderMock(tls=server_context(ca)) as tls_mock,
    ):
        yaml = f"providers:\n  viaproxy: {{type: compatible, base_url: '{tls_mock.url}'}}\n"
        gateway = start(
            start_gateway,
            tmp_path,
            yaml,
            UPSTREAM_CA_BUNDLE=str(ca_file),
            HTTPS_PROXY=f"http://wrong:creds@127.0.0.1:{proxy.port}",
        )
        response = requests.get(f"{gateway.url}/viaproxy/echo")
        assert response.status_code == 502
        assert "407" in response.json()["error"]["message"]
