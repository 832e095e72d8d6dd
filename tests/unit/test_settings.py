"""Settings: one table, four sources in order, clear errors, and .env.example kept in sync."""

from __future__ import annotations

import re
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


def test_env_example_is_inert_and_lists_every_setting_with_its_default_and_help():
    """Every line is a comment, so copying the example to .env overrides nothing."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    entries = {}
    for index, line in enumerate(lines):
        assert not line or line.startswith("#"), f"line {index + 1} is not commented out: {line}"
        match = re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            name, value = match.groups()
            assert lines[index - 1].startswith("# ") and "=" not in lines[index - 1].split()[1], (
                f"{name} has no help line"
            )
            entries[name] = value
    expected = {s.name: s.default for s in SETTINGS}
    expected["GATEWAY_CONFIG"] = ""
    expected.update({f"{n.upper()}_UPSTREAM_URL": url for n, url in BUILTIN_PROVIDERS.items()})
    assert entries == expected


def test_copying_the_env_example_to_dotenv_changes_nothing(tmp_path):
    defaults = load(tmp_path)
    copied = load(tmp_path, dotenv=(ROOT / ".env.example").read_text())
    assert copied.values == defaults.values


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
        ({"WORKERS": "0"}, None, "WORKERS: must be at least 1"),
        ({"MAX_REQUEST_BODY_MB": "0"}, None, "MAX_REQUEST_BODY_MB: must be at least"),
        ({"LOG_LEVEL": "verbose"}, None, "LOG_LEVEL: expected one of debug, info, warning, error"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy"}, None, "TRUSTED_PROXIES"),
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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db/gw", "postgresql://app:***@db/gw"),
        ("postgres://app:s3c@ret@db:5433/gw", "postgres://app:***@db:5433/gw"),
        (
            "postgresql://app:s3c%40ret@db/gw?sslmode=require",
            "postgresql://app:***@db/gw?sslmode=require",
        ),
        (
            "postgresql://db/gw?user=app&password=s3cret&sslmode=require",
            "postgresql://db/gw?user=app&password=***&sslmode=require",
        ),
        ("postgresql://db/gw?password=s3cret", "postgresql://db/gw?password=***"),
        ("host=db user=app password=s3cret dbname=gw", "host=db user=app password=*** dbname=gw"),
        ("host=db password = 's3c ret\\' x' dbname=gw", "host=db password = *** dbname=gw"),
        ("host=db sslpassword=s3cret", "host=db sslpassword=***"),
        ("postgresql://app@db/gw", "postgresql://app@db/gw"),
    ],
)
def test_summary_hides_the_database_password_in_every_form(tmp_path, url, shown):
    settings = load(tmp_path, env={"DATABASE_URL": url})
    assert settings.summary()["DATABASE_URL"] == shown
    assert "s3c" not in str(settings.summary())


def test_summary_never_shows_a_token_setting(tmp_path):
    settings = load(tmp_path, env={"STATUS_TOKEN": "status-token-value"})
    assert "status-token-value" not in str(settings.summary())
    assert settings.summary()["STATUS_TOKEN"].startswith("[REDACTED] sha256:")


@pytest.mark.parametrize(
    ("env", "yaml", "origin"),
    [
        (
            {},
            "providers:\n  ollama:\n    base_url: http://bob:s3cret@gpu:11434\n",
            "providers.ollama.base_url",
        ),
        (
            {},
            "providers:\n  ollama:\n    base_url: http://bob@gpu:11434\n",
            "providers.ollama.base_url",
        ),
        ({"OPENAI_UPSTREAM_URL": "https://bob:s3cret@api.example"}, None, "OPENAI_UPSTREAM_URL"),
    ],
)
def test_credentials_in_a_provider_url_are_refused_without_showing_them(
    tmp_path, env, yaml, origin
):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, env=env, yaml=yaml)
    message = str(caught.value)
    assert message.startswith(origin) and "header" in message
    assert "s3cret" not in message and "bob" not in message


def test_summary_is_plain_json_with_trusted_proxies(tmp_path):
    import json

    settings = load(tmp_path, env={"TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert json.loads(json.dumps(settings.summary()))["TRUSTED_PROXIES"] == [
        "10.0.0.0/8",
        "::1/128",
    ]


def test_secret_settings_are_recognised_in_the_plural_too():
    from simple_gateway.settings import is_secret_setting

    for name in ("STATUS_TOKEN", "METRICS_TOKEN", "ADMIN_PASSWORD", "GATEWAY_API_KEYS"):
        assert is_secret_setting(name), name
    for name in ("WRITER_BATCH_SIZE", "RETENTION_MAX_ROWS", "TRUSTED_PROXIES", "METRICS_ENABLED"):
        assert not is_secret_setting(name), name
