"""Shared fixtures: a mock upstream and real gateway processes in front of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gateway import GatewayProcess
from tests.upstream import MockUpstream

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


def upstream_env(upstream: MockUpstream) -> dict[str, str]:
    return {"OPENAI_UPSTREAM_URL": upstream.url, "ANTHROPIC_UPSTREAM_URL": upstream.url}


@pytest.fixture(scope="session")
def gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The default gateway: one worker, records in SQLite under a temporary folder."""
    workdir = tmp_path_factory.mktemp("gateway")
    with GatewayProcess(workdir, upstream_env(upstream)) as process:
        yield process


@pytest.fixture
def start_gateway(
    upstream: MockUpstream, tmp_path: Path
) -> Iterator[Callable[..., GatewayProcess]]:
    """Start a gateway with extra settings; stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def start(
        env: dict[str, str] | None = None, entry: str = "module", name: str = "gw"
    ) -> GatewayProcess:
        process = GatewayProcess(tmp_path / name, {**upstream_env(upstream), **(env or {})}, entry)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
