"""Scenario results as one Markdown table (with targets) and as raw JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_HEADER = ("Scenario", "Metric", "Direct", "Gateway", "Difference", "Target", "Met")


@dataclass
class Row:
    metric: str
    direct: str = ""
    gateway: str = ""
    diff: str = ""
    target: str = ""
    met: bool | None = None  # None: no target for this line


@dataclass
class Outcome:
    """What one scenario measured: table rows, raw numbers, and an error if it failed."""

    name: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def add(self, metric: str, **cells: Any) -> None:
        self.rows.append(Row(metric, **cells))


def _met(value: bool | None) -> str:
    return "" if value is None else ("met" if value else "**not met**")


def table(outcomes: list[Outcome]) -> str:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for outcome in outcomes:
        if outcome.error:
            cells = (outcome.name, "failed", "", "", "", outcome.error[:160], "**not met**")
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            continue
        for index, row in enumerate(outcome.rows):
            cells = (
                outcome.name if index == 0 else "",
                row.metric,
                row.direct,
                row.gateway,
                row.diff,
                row.target,
                _met(row.met),
            )
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def markdown(outcomes: list[Outcome], header: dict[str, str], problems: list[str]) -> str:
    targets = [row.met for o in outcomes for row in o.rows if row.met is not None]
    targets += [False for o in outcomes if o.error]
    parts = ["# simple-gateway benchmark", ""]
    parts += [f"- {key}: {value}" for key, value in header.items()]
    parts += [f"- targets met: {sum(targets)} of {len(targets)}", "", table(outcomes), ""]
    notes = [f"- `{o.name}`: {note}" for o in outcomes for note in o.notes]
    if notes:
        parts += ["## Notes", "", *notes, ""]
    parts += ["## Gateway log problems", ""]
    parts += [f"- {line}" for line in problems[:50]] or ["- none"]
    if len(problems) > 50:
        parts.append(f"- ... and {len(problems) - 50} more (see results JSON)")
    return "\n".join(parts) + "\n"


def write(out: Path, outcomes: list[Outcome], header: dict[str, str], problems: list[str]) -> str:
    text = markdown(outcomes, header, problems)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = {
        "header": header,
        "problems": problems,
        "scenarios": {o.name: asdict(o) for o in outcomes},
    }
    out.with_suffix(".json").write_text(json.dumps(_finite(raw), indent=2) + "\n")
    return text


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
