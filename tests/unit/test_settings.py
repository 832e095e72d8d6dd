"""Settings: one table, four sources in order, clear errors, and .env.example kept in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from simple_gateway.settings import BUILTIN_PROVIDERS, SETTINGS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def load(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    yaml: str | None = None,
    dotenv: str | None = None,
):  # type: ignore[no-untyped-def]
    config = None
    if yaml is not None:
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml)
    dotenv_path = tmp_path / ".env"
    if dotenv is not None:
        dotenv_path.write_text(dotenv)
    return load_settings(
        env or {}, config_path=str(config) if config else None, dotenv_path=str(dotenv_path)
    )


def test_env_example_lists_every_setting_with_its_default_and_help():
    lines = (ROOT / ".env.example").read_text().splitlines()
    entries = {}
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert lines[index - 1].startswith("# "), f"{name} has no help line"
            entries[name] = value
    expected = {s.name: s.default for s in SETTINGS}
    expected["GATEWAY_CONFIG"] = ""
    expected.update({f"{n.upper()}_UPSTREAM_URL": url for n, url in BUILTIN_PROVIDERS.items()})
    assert entries == expected


def test_defaults_need_no_configuration(tmp_path):
    settings = load(tmp_path)
    assert (settings.host, settings.port, settings.db_path) == (
        "127.0.0.1",
        8080,
        "data/gateway.db",
    )
    assert settings.providers["openai"].base_url == "https://api.openai.com"
    assert settings.workers >= 1


def test_precedence_defaults_yaml_dotenv_environment(tmp_path):
    yaml = "port: 9001\nlog_level: debug\nthreads: 10\n"
    assert load(tmp_path, yaml=yaml).port == 9001
    assert load(tmp_path, yaml=yaml, dotenv="PORT=9002\n").port == 9002
    settings = load(tmp_path, env={"PORT": "9003"}, yaml=yaml, dotenv="PORT=9002\nTHREADS=20\n")
    assert (settings.port, settings.threads, settings.log_level) == (9003, 20, "debug")


def test_yaml_expands_environment_variables_and_declares_providers(tmp_path):
    yaml = (
        "providers:\n"
        "  ollama:\n"
        "    base_url: http://${OLLAMA_HOST}:11434\n"
        "  vllm:\n"
        "    base_url: ${VLLM_URL:-http://localhost:8000}\n"
    )
    settings = load(tmp_path, env={"OLLAMA_HOST": "gpu-box"}, yaml=yaml)
    assert settings.providers["ollama"].base_url == "http://gpu-box:11434"
    assert settings.providers["ollama"].type == "compatible"
    assert settings.providers["vllm"].base_url == "http://localhost:8000"


def test_upstream_url_variables_override_base_urls(tmp_path):
    yaml = "providers:\n  ollama:\n    base_url: http://a:1\n"
    env = {"OLLAMA_UPSTREAM_URL": "http://b:2/", "OPENAI_UPSTREAM_URL": "http://c:3"}
    settings = load(tmp_path, env=env, yaml=yaml)
    assert settings.providers["ollama"].base_url == "http://b:2"
    assert settings.providers["openai"].base_url == "http://c:3"


def test_openai_base_url_is_left_to_the_sdks(tmp_path):
    settings = load(tmp_path, env={"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"})
    assert settings.providers["openai"].base_url == "https://api.openai.com"


@pytest.mark.parametrize(
    ("env", "yaml", "message"),
    [
        ({"PORT": "eighty"}, None, "PORT"),
        ({"PORT": "0"}, None, "PORT: must be at least 1"),
        ({"RECORDS_ENABLED": "maybe"}, None, "RECORDS_ENABLED"),
        ({}, "prot: 1\n", "unknown setting 'prot'"),
        ({}, "providers:\n  x:\n    base_url: ftp://nope\n", "providers.x.base_url"),
        ({"DEFAULT_PROVIDER": "nobody"}, None, "DEFAULT_PROVIDER"),
        ({}, "port: [1\n", "not valid YAML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, env, yaml, message):
    with pytest.raises(SettingsError, match=message):
        load(tmp_path, env=env, yaml=yaml)


def test_summary_hides_the_database_password(tmp_path):
    settings = load(tmp_path, env={"DATABASE_URL": "postgresql://app:s3cret@db/gw"})
    assert settings.summary()["DATABASE_URL"] == "postgresql://app:***@db/gw"
