"""The gunicorn master stays small: it checks, binds and prints, and never loads the app.

Every module the master imports is also in each worker's memory from the fork on, so a
heavy master costs its size once more per worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the master runs before and after binding: `simple_gateway.cli.main` up to gunicorn's
# arbiter, then the `when_ready` banner.
MASTER_STEPS = """
import sys
from simple_gateway.cli import load_checked
from simple_gateway.server import banner, prepare_master, print_dashboard_banner
settings = load_checked({{"DB_PATH": {db!r}, "HOST": "127.0.0.1", "PORT": "9"}})
prepare_master()
banner(settings, ["http://127.0.0.1:9"])
print_dashboard_banner(settings)
heavy = ("flask", "werkzeug", "jinja2", "prometheus_client", "sqlite3", "simple_gateway.app")
print(",".join(name for name in heavy if name in sys.modules))
"""


def test_the_master_imports_neither_flask_nor_the_app(tmp_path: Path) -> None:
    script = MASTER_STEPS.format(db=str(tmp_path / "data" / "gateway.db"))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    loaded = lines[-1] if lines else ""
    assert loaded == "", f"the master imported {loaded}"
