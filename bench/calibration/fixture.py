"""Turn finished ``harness compare`` runs into the real-noise calibration fixture.

    python bench/calibration/fixture.py RUN_DIR [RUN_DIR ...] > tests/data/real_rounds.json

For every run, case and arm it keeps what the paired analysis takes: the median of each
block's timed calls per (process, round, batch) — the raw rounds, without the calls inside
them. ``tests/test_calibration.py`` scores the shipped analysis on them: the A/A copy against
the baseline as recorded, and with a planted effect (the copy's seconds scaled).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.comparison.decide import interleaved_calls
from harness.records.results import Record, load_run
from harness.stats.hierarchy import block_medians


def _rounds(records: list[Record]) -> list[list[float]]:
    keys, medians = block_medians(interleaved_calls(records))
    return [
        [int(p), int(r), int(b), float(f"{m:.6g}")]
        for (p, r, b), m in zip(keys, medians, strict=True)
    ]


def main(paths: list[str]) -> None:
    out = []
    for path in paths:
        run = load_run(Path(path))
        arms = [a["name"] for a in run.meta.config["arms"]]
        cases: dict[str, dict[str, list]] = {}
        for rec in run.records:
            if rec.status == "ok":
                cases.setdefault(rec.key, {}).setdefault(rec.model, []).append(rec)
        out.append(
            {
                "run": run.meta.run_id,
                "arms": arms,
                "interleave": run.meta.config.get("interleave"),
                "processes": run.meta.config.get("processes"),
                "cases": {
                    key: {arm: _rounds(recs) for arm, recs in by_arm.items()}
                    for key, by_arm in sorted(cases.items())
                },
            }
        )
    env = load_run(Path(paths[0])).meta.env
    json.dump(
        {
            "machine": f"{env.get('cpu_model')}, {env.get('logical_cpus')} logical CPUs",
            "software": {k: env.get(k) for k in ("torch", "onnxruntime")},
            "what": "per-block medians (seconds) of harness compare runs: [process, round, "
            "batch, median]",
            "comparisons": out,
        },
        sys.stdout,
        separators=(",", ":"),
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
