"""The command line: help, version, unknown arguments, options and `check`; never a server."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from simple_gateway import __version__, cli


@pytest.fixture(autouse=True)
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GATEWAY_CONFIG", "PORT", "HOST", "LOG_LEVEL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if anything tries to start gunicorn."""
    from simple_gateway import server

    def refuse(settings: object) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(server, "serve", refuse)
    return []


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(flag, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([flag])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: simple-gateway") and "--config" in out and "check" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"simple-gateway {__version__}"


@pytest.mark.parametrize("argv", [["--bogus"], ["serve", "extra"], ["chek"], ["--port", "x"]])
def test_unknown_arguments_exit_2_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: simple-gateway" in capsys.readouterr().err


def test_check_validates_and_prints_one_line(capsys, tmp_path):
    config = tmp_path / "other.yaml"
    config.write_text("providers:\n  ollama:\n    base_url: http://gpu:11434\n")
    assert cli.main(["check", "--config", str(config), "--port", "9123"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    assert "configuration ok" in out and str(config) in out and ":9123" in out
    assert "ollama" in out and str(tmp_path / "data" / "gateway.db") in out


def test_check_reports_a_bad_setting_in_one_line_and_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(SystemExit) as exited:
        cli.main(["check"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "simple-gateway: configuration error: LOG_LEVEL: expected one of debug, info, warning, "
        "error (got 'verbose' from environment)"
    ]


def test_check_warns_once_about_unknown_names_in_dotenv(capsys, tmp_path):
    (tmp_path / "gateway.yaml").write_text("providers:\n  x:\n    base_url: ${X_URL}\n")
    (tmp_path / ".env").write_text(
        "PROT=8081\nPORT=8082\nOLLAMA_UPSTREAM_URL=http://a:1\nX_URL=http://b:2\nGATEWAY_CONFIG=\n"
        "TOKN=1\n"
    )
    assert cli.main(["check"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "simple-gateway: warning: .env: unknown settings PROT, TOKN "
        "(ignored; .env.example lists every setting)"
    ]
    assert "127.0.0.1:8082" in captured.out


def test_the_console_script_is_the_cli_main():
    import tomllib

    pyproject = tomllib.loads((Path(cli.__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    module, _, function = pyproject["project"]["scripts"]["simple-gateway"].partition(":")
    entry = getattr(importlib.import_module(module), function)
    assert entry is cli.main
    assert entry(["check"]) == 0  # what the installed `simple-gateway check` runs
