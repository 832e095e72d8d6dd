"""Provider types: options refused by name, credentials found and replaced, path rules."""

from __future__ import annotations

import pytest

from simple_gateway.errors import InvalidApiKey as Unauthorized
from simple_gateway.keys import GatewayKeys, KeyGate, digest
from simple_gateway.providers import build_provider, register_builtin_types
from simple_gateway.settings import ProviderConfig


def provider(type_name: str, name: str | None = None, base_url: str = "http://up", **options):
    register_builtin_types()
    return build_provider(ProviderConfig(name or type_name, type_name, base_url, options))


def test_unknown_option_is_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"providers\.openai: unknown key 'api_version'"):
        provider("openai", api_version="2024-10-21")
    assert provider("azure", api_version="2024-10-21").api_version == "2024-10-21"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"read_timeout": -1}, "read_timeout: expected a positive number"),
        ({"headers": ["x"]}, "headers: expected a mapping"),
        ({"paths": {"/a": {"retries": 2}}}, "unknown key 'retries'"),
        ({"paths": {"a*": {"read_timeout": 2}}}, "must be a path pattern"),
        ({"client_cert": "/nonexistent/cert.pem"}, "providers.secure:"),
    ],
)
def test_bad_options_stop_the_build(options, message):
    with pytest.raises(ValueError, match=message):
        provider("compatible", "secure", "https://up.example", **options)


def test_per_path_timeouts_pick_the_most_specific_pattern():
    p = provider(
        "openai",
        read_timeout=30,
        paths={"/v1/audio/*": {"read_timeout": 1200}, "/v1/*": {"connect_timeout": 2}},
    )
    audio = p.target("/v1/audio/transcriptions?x=1")
    assert (audio.read_timeout, audio.connect_timeout) == (1200, None)
    chat = p.target("/v1/chat/completions")
    assert (chat.read_timeout, chat.connect_timeout) == (30, 2)
    assert chat.path == "/v1/chat/completions" and chat.origin == ("http", "up", 80)


def admit(gate: KeyGate, p, path: str, **headers: str):
    return gate.admit(p, path, headers).apply(dict(headers))


def test_gemini_gateway_key_in_the_query_is_replaced_by_the_header_key():
    gate = KeyGate(GatewayKeys.parse("gw-1"))
    gemini = provider("gemini", api_key="g-provider")
    request = admit(
        gate, gemini, "/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&key=gw-1"
    )
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent?alt=sse"
    assert request.headers["x-goog-api-key"] == "g-provider"
    assert request.model == "gemini-2.5-flash"
    assert request.gateway_key == digest("gw-1")[:8]
    assert request.secrets == ["g-provider"]


def test_anthropic_version_is_added_only_when_the_client_sent_none():
    gate = KeyGate(None)
    claude = provider("anthropic")
    sent = admit(gate, claude, "/v1/messages", **{"X-Api-Key": "own", "Anthropic-Version": "x"})
    assert sent.headers == {"X-Api-Key": "own", "Anthropic-Version": "x"}
    added = admit(gate, claude, "/v1/messages", **{"X-Api-Key": "own"})
    assert added.headers["anthropic-version"] == "2023-06-01"


def test_replicate_token_scheme_is_a_credential_and_keyless_is_refused_when_keyed():
    gate = KeyGate(None)
    replicate = provider("replicate", api_key="r8_provider")
    with pytest.raises(Unauthorized):
        admit(gate, replicate, "/v1/predictions")
    own = admit(gate, replicate, "/v1/predictions", Authorization="Token r8_own")
    assert own.headers["Authorization"] == "Token r8_own"  # never replaced without gateway keys
    ollama = provider("compatible", "ollama")
    assert admit(gate, ollama, "/v1/chat/completions").headers == {}


def test_azure_api_version_is_added_when_missing():
    azure = provider("azure", api_version="2024-10-21", api_key="az")
    gate = KeyGate(GatewayKeys.parse("gw"))
    request = admit(gate, azure, "/openai/deployments/d/chat/completions", **{"Api-Key": "gw"})
    assert request.path == "/openai/deployments/d/chat/completions?api-version=2024-10-21"
    assert request.headers == {"api-key": "az"}


def test_gateway_key_file_holds_digests(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# team keys\n{digest('team-1')}\n\n{digest('team-2')}  # second\n")
    keys = GatewayKeys.parse(f"@{path}")
    assert keys is not None and keys.accepts("team-2") and not keys.accepts("team-3")
    path.write_text("not-a-digest\n")
    with pytest.raises(ValueError, match=r"keys.txt:1: expected a SHA-256 hex digest"):
        GatewayKeys.parse(f"@{path}")
    assert GatewayKeys.parse("  ") is None


def test_replicate_archives_only_from_its_archive_hosts():
    replicate = provider("replicate")
    allowed = replicate.archiver.allowed
    assert allowed("https://replicate.delivery/pbxt/abc/out-0.png")
    assert allowed("https://pbxt.replicate.delivery/abc/out-0.webp")
    assert not allowed("https://replicate.delivery.evil.example/out.png")
    assert not allowed("https://169.254.169.254/latest/meta-data")
    assert not allowed("file:///etc/passwd")
    assert not provider("replicate", archive_hosts=[]).archiver.allowed(
        "https://replicate.delivery/x.png"
    )
