"""Starting the gateway: the banner, a busy port, bad configuration, secrets in the logs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.gateway import ROOT, GatewayProcess
from tests.polling import wait_for_count
from tests.unit.store import fresh_postgres_database, postgres_admin_url


def run_to_exit(process: GatewayProcess, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the gateway's command expecting it to stop by itself (it must never serve)."""
    process.workdir.mkdir(parents=True, exist_ok=True)
    if process.entry == "module":
        command = [sys.executable, "-m", "simple_gateway"]
    else:
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]
        command += ["wsgi:app", "--chdir", str(ROOT)]
    return subprocess.run(
        command,
        cwd=process.workdir,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_banner_comes_once_after_binding_and_names_config_and_data_paths(
    start_gateway, tmp_path
):
    config = tmp_path / "gateway.yaml"
    config.write_text("threads: 16\n")
    for entry in ("module", "gunicorn"):
        gateway = start_gateway(
            {"WORKERS": "2", "GATEWAY_CONFIG": str(config)}, entry=entry, name=entry
        )
        gateway.stop()
        logs = gateway.logs()
        assert logs.count("listening on") == 1, logs
        banner = logs[logs.index("simple-gateway") :]
        assert f"http://127.0.0.1:{gateway.port}" in banner.splitlines()[0]
        assert f"config:  {config}" in banner
        for name in ("DB_PATH", "FILE_STORAGE_PATH", "SPOOL_PATH"):
            assert gateway.env[name] in banner and Path(gateway.env[name]).is_absolute()
        # gunicorn's own line says the port is bound before ours says we listen
        assert logs.index("Listening at:") < logs.index("listening on")


def test_relative_data_paths_are_shown_absolute_and_no_config_as_none(start_gateway):
    gateway = start_gateway({"DB_PATH": "data/x.db"}, name="relative")
    gateway.stop()
    logs = gateway.logs()
    assert f"records: SQLite {gateway.workdir / 'data' / 'x.db'}" in logs
    assert "config:  none" in logs


def test_a_second_instance_on_the_same_port_fails_at_once_and_says_why(start_gateway):
    first = start_gateway()
    second = GatewayProcess(first.workdir.parent / "second", {"PORT": str(first.port)})
    result = run_to_exit(second, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}: address already in use" in result.stderr
    assert "listening" not in (result.stdout + result.stderr).lower()
    assert requests.get(f"{first.url}/health").status_code == 200


@pytest.mark.parametrize("entry", ["module", "gunicorn"])
@pytest.mark.parametrize(
    ("env", "yaml", "named"),
    [
        ({}, "providers:\n  ollama:\n    type: olama\n    base_url: http://x:1\n", "ollama.type"),
        ({}, "providers:\n  ollama:\n    bse_url: http://x:1\n", "unknown key 'bse_url'"),
        ({}, "prices:\n  gpt-x: {input: free}\n", "prices: "),
        ({"LOG_LEVEL": "verbose"}, "", "LOG_LEVEL"),
        ({"DATABASE_URL": "mysql://app:pw@db/gw"}, "", "DATABASE_URL"),
        ({"OPENAI_UPSTREAM_URL": "https://u:pw@api.example"}, "", "OPENAI_UPSTREAM_URL"),
    ],
)
def test_bad_configuration_stops_the_start_with_one_line_and_no_worker(
    tmp_path, upstream, entry, env, yaml, named
):
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml)
    process = GatewayProcess(
        tmp_path / "gw", {"WORKERS": "2", "GATEWAY_CONFIG": str(config), **env}, entry
    )
    result = run_to_exit(process)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in output.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and named in errors[0], output
    assert "Traceback" not in output and "Booting worker" not in output
    assert "pw@" not in output


def test_the_database_password_is_in_neither_status_nor_logs(start_gateway):
    postgres_admin_url()  # skips without a server
    with fresh_postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        dsn = f"host=127.0.0.1 port=5432 user=postgres password='Pw d@ta\\'x' dbname={name}"
        gateway = start_gateway({"DATABASE_URL": dsn}, name="dsn")
        requests.get(f"{gateway.url}/v1/models")
        status = gateway.status()
        assert status["settings"]["DATABASE_URL"] == (
            f"host=127.0.0.1 port=5432 user=postgres password=*** dbname={name}"
        )
        assert wait_for_count(lambda: status_written(gateway), 1, 30) == 1
        missing = f"sg_missing_{uuid.uuid4().hex[:8]}"
        broken = start_gateway(
            {"DATABASE_URL": f"postgresql://postgres:S3cr%40t@127.0.0.1:5432/{missing}"},
            name="missing",
        )
        requests.get(f"{broken.url}/v1/models")
        wait_for_count(lambda: int("does not exist" in broken.logs()), 1, 30)
        assert "postgres:***@127.0.0.1" in broken.logs()
        gateway.stop()
        broken.stop()
        for process in (gateway, broken):
            assert "Pw d@ta" not in process.logs() and "S3cr" not in process.logs()


def status_written(gateway: GatewayProcess) -> int:
    return int(gateway.status()["records"]["totals"]["written"])
