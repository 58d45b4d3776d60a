"""Export a run to other tools' formats: github-action-benchmark's custom JSON.

``customSmallerIsBetter`` carries median latency per case (ms, with the CI as ``range``);
``customBiggerIsBetter`` carries throughput (sequences/s). Both land on the dashboards of
benchmark-action/github-action-benchmark unchanged.
"""

from __future__ import annotations

from typing import Any

from .results import Run

__all__ = ["FORMATS", "to_github_action_benchmark"]

FORMATS = ("gab-smaller", "gab-bigger")


def to_github_action_benchmark(run: Run, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in sorted(run.latest(), key=lambda r: r.case_id):
        if r.status != "ok":
            continue
        extra = (
            f"backend={r.case['backend']} batch={r.case['batch_size']} seq={r.case['seq_len']} "
            f"n={r.summary['n']} stop={r.stop_reason} weights={r.checkpoint['weights']['sha256'][:12]}"
        )
        if kind == "gab-smaller":
            p50 = r.summary["p50"] * 1e3
            half = (
                p50 * r.summary["rel_ci"]
                if r.summary.get("rel_ci") not in (None, float("inf"))
                else None
            )
            entry = {
                "name": f"{r.case_id} p50",
                "unit": "ms",
                "value": round(p50, 6),
                "extra": extra,
            }
            if half is not None:
                entry["range"] = f"± {half:.4f}"
            out.append(entry)
        elif kind == "gab-bigger":
            out.append(
                {
                    "name": f"{r.case_id} throughput",
                    "unit": "sequences/s",
                    "value": round(r.throughput["sequences_per_s"], 4),
                    "extra": extra,
                }
            )
        else:
            raise ValueError(f"unknown format {kind!r}")
    return out
