"""Preflight: configuration that loads but cannot be built is refused, naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from simple_gateway.preflight import preflight
from simple_gateway.settings import SettingsError, load_settings


def check(tmp_path: Path, yaml: str = "", env: dict[str, str] | None = None) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml)
    preflight(load_settings(env or {}, config_path=str(config), dotenv_path=None))


@pytest.mark.parametrize(
    ("yaml", "env", "message"),
    [
        (
            "providers:\n  ollama:\n    type: compatble\n    base_url: http://x:1\n",
            {},
            "providers.ollama.type: unknown type 'compatble' (known: anthropic, azure, compatible",
        ),
        (
            "providers:\n  ollama:\n    bse_url: http://x:1\n",
            {},
            "providers.ollama: unknown key 'bse_url' for type 'compatible' "
            "(known: api_key, base_url, ca_bundle, client_cert, client_key, connect_timeout, ",
        ),
        ("providers:\n  ollama:\n    type: compatible\n", {}, "providers.ollama.base_url: missing"),
        ("prices:\n  gpt-x: {input: cheap, output: 1}\n", {}, "prices: "),
        ("prices:\n  gpt-x: 3\n", {}, "prices: "),
        ("", {"DATABASE_URL": "mysql://app:pw@db/gw"}, "DATABASE_URL: "),
        ("", {"DATABASE_URL": "db.example.com"}, "DATABASE_URL: "),
    ],
)
def test_bad_configuration_is_refused_naming_the_entry(tmp_path, yaml, env, message):
    with pytest.raises(SettingsError) as caught:
        check(tmp_path, yaml, env)
    assert str(caught.value).startswith(message)
    assert "pw@" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "postgresql://app:pw@db/gw",
        "postgres://db/gw",
        "host=db dbname=gw user=app password=pw",
        "sqlite:///data/other.db",
    ],
)
def test_database_urls_the_stores_open_are_accepted(tmp_path, url):
    check(tmp_path, env={"DATABASE_URL": url})


def test_a_good_configuration_passes(tmp_path):
    check(
        tmp_path,
        "providers:\n  ollama:\n    type: compatible\n    base_url: http://x:1\n    prefix: /o\n"
        "prices:\n  llama3.1:8b: {input: 0, output: 0}\n",
    )
