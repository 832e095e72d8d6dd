"""/ready: 503 while the worker drains, 200 otherwise (the records cases run end to end)."""

from __future__ import annotations

from pathlib import Path

from simple_gateway.app import create_app
from simple_gateway.settings import load_settings


def test_ready_is_503_while_the_worker_drains(tmp_path: Path) -> None:
    settings = load_settings(
        {"RECORDS_ENABLED": "false", "METRICS_ENABLED": "false"},
        config_path=None,
        dotenv_path=str(tmp_path / ".env"),
    )
    app = create_app(settings)
    client = app.test_client()
    answer = client.get("/ready")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ready", "records": "disabled", "reasons": []}

    app.extensions["simple_gateway"].draining = True
    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.get_json()["reasons"] == ["the worker is draining for a stop"]
    assert client.get("/health").status_code == 200  # liveness is another question
