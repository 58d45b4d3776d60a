"""Expected wall time of a sweep on one node, from a run measured on that kind of node.

    python bench/ray/estimate.py RUN_DIR SWEEP.toml

Each (checkpoint, backend, dtype) group costs its measured preparation (load + export /
trace / compile, from the records' cold costs) plus, per case, what a case of its kind
(synthetic shape, or real-text language case) on the same backend took end to end: the time
between consecutive records of a group (binding, parity, warm-up, timing, ceilings), not only
its timed samples. The run
must have measured every backend of the sweep; its shapes and languages may be a subset.
The estimate is per node; with N nodes of the kind and one group per node, divide by N
(groups are whole tasks, so the last node to finish sets the pace).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median

from harness.records.results import load_run
from harness.spec.sweep import load_sweep


def main(run_dir: str, sweep_file: str) -> None:
    run = load_run(Path(run_dir))
    sweep = load_sweep(Path(sweep_file))
    prepare: dict[str, list[float]] = defaultdict(list)
    per_case: dict[tuple[str, bool], list[float]] = defaultdict(list)
    previous: dict[tuple[str, str, str], float] = {}
    for r in run.records:  # in the order they were written
        group = (r.model, str(r.case["backend"]), str(r.case["dtype"]))
        at = datetime.strptime(r.started_at, "%Y-%m-%dT%H:%M:%S%z").timestamp()
        if r.status == "ok":
            backend = group[1]
            prepare[backend].append(
                float(r.cold.get("load_s", 0)) + float(r.cold.get("prepare_s", 0))
            )
            if group in previous:
                per_case[(backend, r.case.get("language") is not None)].append(at - previous[group])
        previous[group] = at
    languages = 36 if sweep.languages == ("xtreme",) else len(sweep.languages)
    shapes = len(sweep.batch_sizes) * len(sweep.seq_lens) if sweep.synthetic else 0
    lang_cases = languages * len(sweep.policies) * len(sweep.lang_batch_sizes or sweep.batch_sizes)
    total = 0.0
    print(
        f"run {run.meta.run_id} on {run.meta.env.get('cpu_model')} {run.meta.env.get('gpu_name') or ''}"
    )
    for backend in sweep.backends:
        if backend not in prepare:
            raise SystemExit(f"the run has no measured {backend!r} case: cannot estimate it")
        prep = median(prepare[backend])
        synth = median(per_case.get((backend, False)) or [0.0])
        text = median(per_case.get((backend, True)) or per_case.get((backend, False)) or [0.0])
        group = prep + shapes * synth + lang_cases * text
        total += group * len(sweep.models)
        print(
            f"  {backend:18s} prepare {prep:6.1f} s + {shapes} shapes × {synth:5.2f} s + "
            f"{lang_cases} language cases × {text:5.2f} s = {group / 60:6.1f} min per group"
        )
    groups = len(sweep.models) * len(sweep.backends)
    print(
        f"{groups} groups, {groups * (shapes + lang_cases)} cases: {total / 3600:.1f} h on one "
        f"node, about {total / 3600 / min(groups, 10):.1f} h on 10 such nodes"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
