"""Library entry points for comparisons: run arms interleaved, or compare two finished runs."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from harness.comparison.decide import CompareSettings, Comparison, compare_records
from harness.comparison.interleave import InterleaveSpec, rotation, run_interleaved
from harness.errors import HarnessError
from harness.execution.launcher import run_in_worker
from harness.execution.options import Event, RunOptions
from harness.execution.plan import expand
from harness.records.env import collect_env, comparability_problems, hardware_class, record_env
from harness.records.results import Record, Run, RunMeta, error_record, load_run, timestamp
from harness.records.store import RunStore, new_run_id
from harness.records.types import CaseInfo
from harness.spec.config import ModelSpec
from harness.spec.sweep import Case, SweepSpec

__all__ = ["AA_SUFFIX", "compare_run_dirs", "comparisons_of", "fresh_seed", "run_comparison"]

#: The A/A control arm: the baseline again, prepared separately, named ``<name>~aa``.
AA_SUFFIX = "~aa"


def _arm_cases(sweep: SweepSpec, models_dir: Path | None, aa: bool) -> list[list[Case]]:
    cases = expand(sweep, models_dir)
    by_model: dict[str, list[Case]] = {}
    for c in cases:
        by_model.setdefault(c.model.name, []).append(c)
    arms = list(by_model.values())
    if aa:
        base = arms[0]
        twin: ModelSpec = replace(base[0].model, name=base[0].model.name + AA_SUFFIX)
        arms.insert(1, [replace(c, model=twin) for c in base])
    if len(arms) < 2:
        raise HarnessError("compare needs two or more checkpoints (or --aa for an A/A test)")
    return arms


def _by_backend(arms: list[list[Case]]) -> list[list[list[Case]]]:
    """Arms split per prepared group (backend, dtype, and the task's head): one interleaving
    each."""
    groups = list(dict.fromkeys((c.backend, c.dtype, c.task) for c in arms[0]))
    return [[[c for c in arm if (c.backend, c.dtype, c.task) == g] for arm in arms] for g in groups]


def _process_job(
    groups: list[list[list[CaseInfo]]],
    spec: InterleaveSpec,
    process: int,
    store: RunStore,
    opts: RunOptions,
    emit: Callable[[Event], None],
) -> None:
    """One process of a comparison: every backend group in turn, in an order rotated across
    processes (what a process ran first must not always be the same backend)."""
    for g in rotation(len(groups), process):
        arms = [[Case.from_dict(c) for c in arm] for arm in groups[g]]
        run_interleaved(arms, store, opts, spec, emit, process, group_index=g)


def fresh_seed() -> int:
    """A seed for a comparison that was not given one: each comparison its own orders."""
    return secrets.randbelow(2**31)


def run_comparison(
    sweep: SweepSpec,
    out_root: Path,
    opts: RunOptions,
    *,
    settings: CompareSettings,
    interleave: InterleaveSpec,
    aa: bool = False,
    processes: int = 1,
    models_dir: Path | None = None,
    emit: Callable[[Event], None] | None = None,
    inline: bool = False,
) -> Path:
    """Measure all arms interleaved, ``processes`` times, each in a fresh process when > 1
    (the process is the replicate of the analysis: two or more are needed for a verdict).
    ``inline`` runs every "process" in this one (tests on a fake clock; never for timing)."""
    emit = emit or (lambda e: None)
    arms = _arm_cases(sweep, models_dir, aa)
    meta = RunMeta(
        run_id=new_run_id("compare"),
        created=timestamp(),
        kind="compare",
        env=collect_env(),
        config={
            "sweep": sweep.to_dict(),
            "arms": [a[0].model.to_dict() for a in arms],
            "settings": asdict(settings),
            "interleave": asdict(interleave),
            "processes": processes,
            "aa": aa,
        },
        planned=[c.case_id for arm in arms for c in arm],
    )
    store = RunStore.create(out_root, meta)
    groups = _by_backend(arms)
    dicts = [[[c.to_dict() for c in arm] for arm in g] for g in groups]
    for process in range(processes):
        job = functools.partial(_process_job, dicts, interleave, process)
        if processes == 1 or inline:
            job(store, opts, emit)
            continue
        # The launcher's worker machinery: watchdog, group timeout, out-of-memory report.
        outcome = run_in_worker(job, store, opts, emit)
        for c in (c for g in groups for arm in g for c in arm):
            if c.case_id in outcome.done:
                continue
            rec = error_record(c, "error", f"compare process {process}: {outcome.message()}")
            rec.workload["interleaved"] = {"process": process}
            store.append(rec)
            emit(("done", rec))
    return store.path


def comparisons_of(run: Run, settings: CompareSettings) -> list[Comparison]:
    """Every non-baseline arm of a compare run against the first arm."""
    arms = [a["name"] for a in run.meta.config.get("arms", [])]
    if len(arms) < 2:
        raise HarnessError(f"{run.path}: not a comparison run")
    by_arm: dict[str, list[Record]] = {a: [] for a in arms}
    for rec in run.records:
        by_arm.setdefault(rec.model, []).append(rec)
    base = by_arm[arms[0]]
    return [
        Comparison(arms[0], arm, settings, compare_records(base, by_arm[arm], settings), [])
        for arm in arms[1:]
    ]


def compare_run_dirs(
    a: Path, b: Path, settings: CompareSettings, *, strict: bool = True
) -> Comparison:
    """Two finished runs. Refuses (HarnessError) when their environments differ, unless not
    ``strict``, in which case the differences become warnings."""
    run_a, run_b = load_run(a), load_run(b)
    problems = comparability_problems(run_a.meta.env, run_b.meta.env)
    # Cases measured on a cluster carry their node's environment: pair those, not the drivers'.
    hosts_a = {r.key: record_env(r, run_a.meta.env) for r in run_a.records}
    hosts_b = {r.key: record_env(r, run_b.meta.env) for r in run_b.records}
    for key in sorted(hosts_a.keys() & hosts_b.keys()):
        ha, hb = hardware_class(hosts_a[key]), hardware_class(hosts_b[key])
        if ha != hb:
            problems.append(f"{key}: measured on different hardware ({ha} vs {hb})")
            break
    if problems and strict:
        raise HarnessError("runs are not comparable: " + "; ".join(problems))
    models_a = {r.model for r in run_a.records}
    models_b = {r.model for r in run_b.records}
    by = "case_id" if models_a & models_b else "key"
    if by == "key" and (len(models_a) > 1 or len(models_b) > 1):
        raise HarnessError(
            "runs hold different checkpoints and more than one each; cannot pair them"
        )
    results = compare_records(run_a.records, run_b.records, settings, by=by)
    if not results:
        raise HarnessError("the two runs have no case in common")
    name_a = run_a.meta.run_id
    name_b = run_b.meta.run_id
    return Comparison(name_a, name_b, settings, results, problems)
