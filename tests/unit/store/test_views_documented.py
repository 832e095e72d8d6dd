"""The README's Records section names every column of every view."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from simple_gateway.store.sqlite import SqliteStore

README = Path(__file__).resolve().parents[3] / "README.md"
RECORDS_VIEWS = ("recent_requests", "usage_by_model_day", "recent_errors")  # the Records section's


def test_every_view_column_is_documented(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "g.db"))
    try:
        store.migrate()
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "g.db") as conn:
        columns = {
            v: [r[1] for r in conn.execute(f"PRAGMA table_info({v})")] for v in RECORDS_VIEWS
        }
    text = README.read_text(encoding="utf-8")
    for view, names in columns.items():
        assert names, f"no view {view}"
        match = re.search(rf"^- `{view}`(.*?)(?=^- `|^\S)", text, re.M | re.S)
        assert match, f"README does not describe the view {view}"
        documented = set(re.findall(r"`([a-z_0-9]+)`", match.group(1)))
        assert set(names) <= documented, (view, set(names) - documented)
