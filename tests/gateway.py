"""Runs the real gateway (`python -m simple_gateway`, gunicorn gthread) as a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
_PROXY_VARIABLES = frozenset({"https_proxy", "http_proxy", "no_proxy", "all_proxy"})
STATUS_TOKEN = "test-status-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """A gateway listening on a free port, with its data under `workdir`."""

    def __init__(
        self, workdir: Path, env: dict[str, str] | None = None, entry: str = "module"
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # A proxy of the machine running the tests must not carry traffic to the mocks;
            # a test that wants a proxy passes HTTPS_PROXY / HTTP_PROXY in `env`.
            **{k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES},
            "PYTHONPATH": str(ROOT),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": "1",
            "THREADS": "64",
            "GRACEFUL_TIMEOUT": "10",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            "DB_PATH": str(workdir / "data" / "gateway.db"),
            "FILE_STORAGE_PATH": str(workdir / "data" / "files"),
            "SPOOL_PATH": str(workdir / "data" / "spool"),
            "STATUS_TOKEN": STATUS_TOKEN,
            **(env or {}),
        }
        for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
            self.env.pop(name, None)
        self.entry = entry
        self.stdout_path = workdir / "gateway.stdout"
        self.stderr_path = workdir / "gateway.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.entry == "module":
            command = [sys.executable, "-m", "simple_gateway"]
        else:
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "wsgi:app",
                "--chdir",
                str(ROOT),
            ]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env, stdout=out, stderr=err
            )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # a busy machine: ask again
                pass
            time.sleep(0.05)  # bounded poll for a child process to bind its port
        raise TimeoutError(f"gateway not healthy after {timeout}s:\n{self.logs()}")

    def status(self) -> dict[str, Any]:
        """The full /status, with the token the tests configure."""
        response = requests.get(
            f"{self.url}/status",
            headers={"Authorization": f"Bearer {self.env['STATUS_TOKEN']}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def logs(self) -> str:
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return out + err

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()]

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
