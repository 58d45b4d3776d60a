"""The harness from Python: the same checks as the command line, the same records.

Every function checks its whole input first — every checkpoint, the corpus and its
languages, the output directory — and raises :class:`~harness.errors.HarnessError` with the
one-line message the CLI prints, having written nothing. Measuring functions return the run
directory's contents (:class:`~harness.records.results.Run`); nothing here prints.

    import harness

    run = harness.run(models=["xlmr-tiny"], backends=["eager", "onnxruntime"],
                      batch_sizes=[1, 8], seq_lens=[32], out="reports")
    for cmp in harness.compare(models=["xlmr-tiny", "xlmr-tiny-deep"], aa=True,
                               backends=["eager"], processes=4, out="reports"):
        print(cmp.candidate, cmp.counts())
    rows = harness.export_rows(run)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.comparison.decide import CompareSettings, Comparison
    from harness.comparison.gate import GateRow, GateSettings
    from harness.comparison.spec import InterleaveSpec
    from harness.execution.options import Event
    from harness.records.results import Run
    from harness.spec.sweep import SweepSpec

__all__ = [
    "check_output",
    "compare",
    "compare_runs",
    "export_rows",
    "gate",
    "load",
    "run",
    "sweep_spec",
]


def check_output(out: str | Path) -> Path:
    """``out`` as a reports directory that a run can be created in, or one line why not —
    without creating it (its nearest existing parent must be a writable directory)."""
    path = Path(out).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise HarnessError(f"{path}: output directory is not writable ({probe} is not a directory)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HarnessError(f"{path}: output directory is not writable ({probe} is read-only)")
    return path


def sweep_spec(spec: SweepSpec | str | Path | None = None, **changes: Any) -> SweepSpec:
    """A :class:`~harness.spec.sweep.SweepSpec`: a built-in name (``"smoke"``), a TOML file, or
    the defaults, with ``changes`` applied (``models=[...]``, ``batch_sizes=[...]``, ...)."""
    import dataclasses

    from harness.spec.sweep import SweepSpec, load_sweep

    base = spec if isinstance(spec, SweepSpec) else load_sweep(Path(spec)) if spec else SweepSpec()
    known = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise HarnessError(
            f"sweep: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return base.replace(**tuples)


def _options(cache_dir: str | Path | None, corpus: Path | None, **extra: Any) -> Any:
    from harness.cache import default_cache_dir
    from harness.execution.options import RunOptions

    return RunOptions(
        cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(), corpus=corpus, **extra
    )


def run(
    spec: SweepSpec | str | Path | None = None,
    *,
    out: str | Path = "reports",
    cache_dir: str | Path | None = None,
    allow_pickle: bool = False,
    emit: Callable[[Event], None] | None = None,
    **changes: Any,
) -> Run:
    """Measure a sweep (see :func:`sweep_spec`) into a new run directory under ``out``."""
    from harness.execution.launcher import run_sweep
    from harness.execution.plan import plan_sweep
    from harness.records.results import load_run

    root = check_output(out)
    planned = plan_sweep(sweep_spec(spec, **changes), allow_pickle=allow_pickle)
    opts = _options(
        cache_dir, planned.corpus, allow_pickle=allow_pickle, isolate=planned.sweep.isolate
    )
    path = run_sweep(
        planned.sweep, root, opts, emit=emit, cases=planned.cases, skipped=planned.skipped
    )
    return load_run(path)


def compare(
    spec: SweepSpec | str | Path | None = None,
    *,
    out: str | Path = "reports",
    aa: bool = False,
    processes: int = 10,
    interleave: InterleaveSpec | None = None,
    settings: CompareSettings | None = None,
    cache_dir: str | Path | None = None,
    emit: Callable[[Event], None] | None = None,
    **changes: Any,
) -> list[Comparison]:
    """Checkpoints (``models=[baseline, candidate, ...]``) interleaved in ``processes``
    fresh processes; every candidate against the first. Writes a comparison run with its
    report, and returns the comparisons."""
    from harness.comparison.arms import comparisons_of, fresh_seed, run_comparison
    from harness.comparison.decide import CompareSettings
    from harness.comparison.spec import InterleaveSpec
    from harness.execution.plan import plan_sweep
    from harness.records.results import load_run
    from harness.render.comparison import write_compare_report

    if processes < 1:
        raise HarnessError("processes must be >= 1")
    root = check_output(out)
    settings = settings or CompareSettings()
    interleave = interleave or InterleaveSpec(seed=fresh_seed())
    planned = plan_sweep(sweep_spec(spec, **changes), skip_missing_text=False)
    if len(planned.sweep.models) < 2 and not aa:
        raise HarnessError("compare needs two or more checkpoints (or aa=True for an A/A test)")
    path = run_comparison(
        planned.sweep,
        root,
        _options(cache_dir, planned.corpus),
        settings=settings,
        interleave=interleave,
        aa=aa,
        processes=processes,
        emit=emit,
    )
    result = load_run(path)
    write_compare_report(result, settings)
    return comparisons_of(result, settings)


def compare_runs(
    a: str | Path, b: str | Path, settings: CompareSettings | None = None, *, strict: bool = True
) -> Comparison:
    """Two finished runs, case by case (refused when measured on different machines or
    library versions, unless not ``strict``)."""
    from harness.comparison.arms import compare_run_dirs
    from harness.comparison.decide import CompareSettings

    return compare_run_dirs(Path(a), Path(b), settings or CompareSettings(), strict=strict)


def gate(
    baseline: str | Path, candidate: str | Path, settings: GateSettings | None = None
) -> list[GateRow]:
    """The stored-baseline gate: every (case, metric) row of ``candidate`` against
    ``baseline``; a row with ``regression`` set fails a build."""
    from harness.comparison.gate import GateSettings, gate_runs
    from harness.records.results import load_run

    rows, _ = gate_runs(
        load_run(Path(baseline)), load_run(Path(candidate)), settings or GateSettings()
    )
    return rows


def load(path: str | Path) -> Run:
    """A run directory's records (typed, migrated from older schema versions)."""
    from harness.records.results import load_run

    return load_run(Path(path))


def export_rows(run_or_path: Run | str | Path) -> Sequence[dict[str, Any]]:
    """One flat row per record (what ``harness export`` writes as CSV or Parquet)."""
    from harness.records.export import flat_rows
    from harness.records.results import Run

    run_obj = run_or_path if isinstance(run_or_path, Run) else load(run_or_path)
    return flat_rows(run_obj)
