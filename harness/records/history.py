"""Runs over commits: a small store of per-run metrics keyed by git sha, and step detection.

Each added run becomes one JSON file (``<created>-<sha>-<run_id>.json``) holding the metrics
of every case, so the store stays small enough to commit or cache in CI, while the full runs
(with raw samples) live wherever the team keeps artifacts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records.metrics import METRICS as _REGISTRY
from harness.records.results import Run
from harness.records.store import write_atomic
from harness.stats.changepoint import ChangePoint, e_divisive

__all__ = ["METRICS", "Series", "add_run", "load_series"]

METRICS = tuple(_REGISTRY)


def _metrics(run: Run) -> dict[str, dict[str, float]]:
    out = {}
    for r in run.latest():
        if r.status == "ok":
            out[r.case_id] = {name: m.value(r) for name, m in _REGISTRY.items() if m.applies(r)}
    return out


def add_run(store: Path, run: Run) -> Path:
    sha = run.meta.env.get("git_sha") or "unknown"
    store.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", run.meta.created)[:15]
    target = store / f"{stamp}-{sha[:12]}-{run.meta.run_id}.json"
    entry = {
        "git_sha": sha,
        "created": run.meta.created,
        "run_id": run.meta.run_id,
        "cpu_model": run.meta.env.get("cpu_model"),
        "metrics": _metrics(run),
    }
    write_atomic(target, json.dumps(entry, indent=1) + "\n")
    return target


@dataclass
class Series:
    case_id: str
    metric: str
    commits: list[str]
    created: list[str]
    values: list[float]
    change_points: list[ChangePoint]


def load_series(store: Path, metric: str, case_filter: str = "") -> list[Series]:
    if metric not in METRICS:
        raise HarnessError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    if not store.is_dir():
        raise HarnessError(f"{store}: no history store (add runs with `harness history add RUN`)")
    entries: list[dict[str, Any]] = []
    for f in sorted(store.glob("*.json")):
        try:
            entries.append(json.loads(f.read_text()))
        except json.JSONDecodeError:
            raise HarnessError(f"{f}: corrupt history entry") from None
    entries.sort(key=lambda e: e["created"])
    cases = sorted({c for e in entries for c in e["metrics"] if case_filter in c})
    out = []
    for case in cases:
        points = [
            (e["git_sha"][:12], e["created"], e["metrics"][case][metric])
            for e in entries
            if case in e["metrics"]
        ]
        values = [p[2] for p in points]
        # throughput: higher is better; the detector is symmetric, so no sign flip is needed
        out.append(
            Series(
                case,
                metric,
                [p[0] for p in points],
                [p[1] for p in points],
                values,
                e_divisive(values) if len(values) >= 6 else [],
            )
        )
    return out
