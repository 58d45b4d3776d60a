"""Checkpoints compared at the capacity level: "serves X % fewer requests at p99 <= bound".

Two ``serve-bench`` runs are paired case by case (same backend, device, traffic, batching and
bound; the checkpoint may differ). Each side's capacity is a bracket ``[passed, failed)``
from its search; :func:`harness.serving.capacity.compare_brackets` calls a difference only
when the brackets cannot overlap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records.env import comparability_problems
from harness.records.results import Record, load_run
from harness.serving.capacity import Capacity, compare_brackets

__all__ = ["CapacityComparison", "compare_capacity_runs", "is_serve_run"]


@dataclass(frozen=True)
class CapacityComparison:
    key: str
    baseline: str
    candidate: str
    baseline_qps: float
    candidate_qps: float
    ratio: float
    ratio_low: float
    ratio_high: float
    verdict: str
    margin: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        bound = self.key.rsplit("/", 1)[-1]
        change = abs(1 - self.ratio)
        if self.verdict in ("fewer", "more"):
            return (
                f"{self.candidate} serves {change:.0%} {self.verdict} requests than "
                f"{self.baseline} at {bound} (ratio {self.ratio:.3f}, brackets allow "
                f"{self.ratio_low:.3f}–{self.ratio_high:.3f})"
            )
        return (
            f"{self.candidate} and {self.baseline}: capacities at {bound} not told apart "
            f"(ratio {self.ratio:.3f}, brackets allow {self.ratio_low:.3f}–{self.ratio_high:.3f}, "
            f"noise margin ±{self.margin:.0%})"
        )


def is_serve_run(path: Path) -> bool:
    """Whether ``path`` holds a serve-bench run, from its ``run.json`` alone (the records are
    read once, by the comparison). Anything unreadable is not; loading it then says why."""
    try:
        meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "serve"


def _capacity(rec: Record) -> Capacity:
    s = rec.scenario
    probes = tuple((float(p["target_qps"]), bool(p["valid"])) for p in s["probes"])
    return Capacity(s["capacity_qps"], s["fail_qps"], probes, s["search_stop"])


def compare_capacity_runs(
    baseline: Path, candidate: Path, *, margin: float = 0.15, strict: bool = True
) -> tuple[list[CapacityComparison], list[str]]:
    """Pair the two runs' capacity cases; returns the comparisons and any warnings."""
    run_a, run_b = load_run(baseline), load_run(candidate)
    if run_a.meta.kind != "serve" or run_b.meta.kind != "serve":
        raise HarnessError("a capacity comparison needs two serve-bench runs")
    problems = comparability_problems(run_a.meta.env, run_b.meta.env)
    if problems and strict:
        raise HarnessError("runs are not comparable: " + "; ".join(problems))
    a = {r.key: r for r in run_a.latest() if r.status == "ok"}
    b = {r.key: r for r in run_b.latest() if r.status == "ok"}
    out = []
    for key in sorted(a.keys() & b.keys()):
        verdict, ratio, (low, high) = compare_brackets(_capacity(a[key]), _capacity(b[key]), margin)
        out.append(
            CapacityComparison(
                key=key,
                baseline=a[key].model,
                candidate=b[key].model,
                baseline_qps=a[key].scenario["capacity_qps"],
                candidate_qps=b[key].scenario["capacity_qps"],
                ratio=ratio,
                ratio_low=low,
                ratio_high=high,
                verdict=verdict,
                margin=margin,
            )
        )
    if not out:
        raise HarnessError("the two serve-bench runs have no measured case in common")
    return out, problems
