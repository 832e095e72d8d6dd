"""/status: health for anyone, the rest with STATUS_TOKEN; never a 500 over a counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from simple_gateway.app import create_app
from simple_gateway.settings import load_settings

TOKEN = "unit-status-token"


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = load_settings(
        {
            "STATUS_TOKEN": TOKEN,
            "DB_PATH": str(tmp_path / "gw.db"),
            "FILE_STORAGE_PATH": str(tmp_path / "files"),
            "SPOOL_PATH": str(tmp_path / "spool"),
        },
        dotenv_path=None,
    )
    app = create_app(settings)
    return app, app.test_client()


def test_full_status_survives_unreadable_record_counters(client, monkeypatch) -> None:
    app, http = client
    gateway = app.extensions["simple_gateway"]

    def broken() -> dict[str, int]:
        raise OSError("a metrics file vanished")

    monkeypatch.setattr(gateway.metrics, "record_counters", broken)
    response = http.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json["records"]["totals"] is None
    assert response.json["providers"]["openai"]["type"] == "openai"


def test_token_comparison_needs_the_bearer_scheme_and_the_exact_token(client) -> None:
    _app, http = client
    for authorization in (TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"):
        assert http.get("/status", headers={"Authorization": authorization}).status_code == 401
    assert http.get("/status", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
