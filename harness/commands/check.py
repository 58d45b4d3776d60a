"""``harness check``: the CI performance gate. Exit 0 pass · 1 regression · 2 error/incomparable."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from harness.commands.common import default_cache, make_console, progress_bar
from harness.commands.compare import add_interleave_args, interleave_spec
from harness.errors import EXIT_OK, EXIT_REGRESSION, HarnessError

__all__ = ["DEFAULT_SUITE", "register"]

DEFAULT_SUITE = Path("bench/ci/suite.toml")


def _planned_suite(args: argparse.Namespace, models: tuple[str, ...] | None = None) -> Any:
    """The suite (with ``models`` in place of its own), checked: every checkpoint, the
    corpus and its languages, before anything is measured or written."""
    from harness.execution.plan import plan_sweep
    from harness.spec.sweep import load_sweep

    sweep = load_sweep(args.suite)
    if args.repeat is not None:
        sweep = sweep.replace(repeats=args.repeat)
    if models is not None:
        sweep = sweep.replace(models=models, repeats=1)
    if args.corpus:
        sweep = sweep.replace(corpus=str(args.corpus))
    return plan_sweep(sweep, skip_missing_text=False)


def _run_suite(args: argparse.Namespace, out: Path) -> Path:
    from harness.execution.launcher import run_sweep
    from harness.execution.options import RunOptions

    planned = _planned_suite(args)
    opts = RunOptions(
        cache_dir=args.cache_dir or default_cache(),
        corpus=planned.corpus,
        isolate=planned.sweep.isolate,
    )
    console = make_console(args.quiet)
    progress, emit = progress_bar(console, len(planned.cases) * planned.sweep.repeats)
    with progress:
        return run_sweep(planned.sweep, out, opts, emit=emit, cases=planned.cases)


def _thresholds(args: argparse.Namespace) -> dict[str, float]:
    from harness.comparison.gate import DEFAULT_THRESHOLDS

    out = dict(DEFAULT_THRESHOLDS)
    if args.threshold is not None:
        out = dict.fromkeys(out, args.threshold)
    for item in args.metric or []:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        except ValueError:
            raise HarnessError(
                f"--metric expects NAME=VALUE (e.g. p90=10%), got {item!r}"
            ) from None
    return out


def cmd_check(args: argparse.Namespace) -> int:
    from harness.comparison.gate import GateSettings, gate_runs
    from harness.records.results import load_run

    if args.refresh_baseline:
        return _refresh(args)
    if args.candidate:
        return cmd_check_interleaved(args)
    if args.baseline_python:
        return cmd_check_abba(args)
    if args.baseline is None:
        raise HarnessError(
            "check needs --baseline RUN_DIR, --candidate MODEL, --baseline-python PY, "
            "or --refresh-baseline DIR"
        )
    settings = GateSettings(
        thresholds=_thresholds(args), alpha=args.alpha, normalize=args.normalize
    )
    baseline = load_run(args.baseline)
    if args.run is None and not args.allow_incomparable:
        # Refuse before spending minutes on a suite whose result could not be compared.
        from harness.records.env import collect_env, comparability_problems

        problems = comparability_problems(baseline.meta.env, collect_env())
        if problems:
            raise HarnessError(
                f"{args.baseline} was measured elsewhere ({'; '.join(problems)}): refresh a "
                "baseline on this machine (make perf-baseline), or --allow-incomparable"
            )
    candidate_dir = args.run or _run_suite(args, args.out)
    candidate = load_run(candidate_dir)
    rows, warnings = gate_runs(baseline, candidate, settings, strict=not args.allow_incomparable)

    console = make_console()
    for w in warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    return _verdict(
        console,
        rows,
        settings,
        args,
        title="what moved",
        json_extra={"baseline": str(args.baseline), "candidate": str(candidate_dir)},
        failed_suffix=f" (candidate {candidate_dir})",
        passed=f"checked against {args.baseline}",
    )


def _verdict(
    console: Any,
    rows: list[Any],
    settings: Any,
    args: argparse.Namespace,
    *,
    title: str,
    json_extra: dict[str, Any],
    failed_suffix: str,
    passed: str,
) -> int:
    """What every gate mode prints and returns: the rows that moved (or all), the JSON, the
    regressions (exit 1), or the gate's power and a pass (exit 0)."""
    from harness.render.console import rich_table
    from harness.render.gate import gate_rows

    moved = [
        r
        for r in rows
        if r.regression or r.improvement or abs(r.change) > settings.thresholds[r.metric]
    ]
    shown, name = (rows, "all metrics") if args.all else (moved, title)
    console.print(rich_table(gate_rows(shown, settings), name))
    regressions = [r for r in rows if r.regression]
    if args.json:
        payload = {"regressions": len(regressions), "rows": [r.to_dict() for r in rows]}
        args.json.write_text(json.dumps(payload | json_extra, indent=2))
    if regressions:
        console.print(
            f"[red]{len(regressions)} regression(s) beyond threshold[/red]{failed_suffix}"
        )
        return EXIT_REGRESSION
    mdes = sorted(r.mde for r in rows if r.mde is not None and r.metric == "p50")
    timed = [r for r in rows if r.metric == "p50"]
    if mdes:
        worst = max(settings.thresholds.get("p50", 0.05), 0.0)
        blind = sum(m > worst for m in mdes)
        console.print(
            f"power: with runs as the replicate, this gate fails p50 slowdowns of "
            f"{100 * mdes[len(mdes) // 2]:.1f} % with 90 % power (median over {len(mdes)} "
            "case(s))"
            + (
                f"; {blind} of {len(mdes)} case(s) could not see a {100 * worst:g} % change"
                if blind
                else ""
            )
        )
    if len(mdes) < len(timed):
        console.print(
            f"no power claim for {len(timed) - len(mdes)} case(s): one run a side, so their "
            "intervals leave out run-to-run variation (repeat the runs on both sides, "
            "--repeat 2 or more, for a gate that says what it can see)"
        )
    console.print(f"no regression: {len(rows)} metric(s) {passed}")
    return EXIT_OK


def _suite_run(python: str, args: argparse.Namespace, out: Path) -> Path:
    """One run of the suite by ``python`` (another environment, e.g. the baseline commit's),
    as a fresh process; returns its run directory."""
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    cmd = [python, "-m", "harness", "run", "--sweep", str(args.suite), "--out", str(out), "-q"]
    if args.cache_dir:
        cmd += ["--cache-dir", str(args.cache_dir)]
    if args.corpus:
        cmd += ["--corpus", str(args.corpus)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 3):
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise HarnessError(f"{python}: the suite run failed (exit {proc.returncode}): {tail}")
    new = sorted(set(out.iterdir()) - before)
    if len(new) != 1:
        raise HarnessError(f"{python}: the suite run wrote {len(new)} run directories, not 1")
    return new[0]


def cmd_check_abba(args: argparse.Namespace) -> int:
    """Two environments in the same job (asv's ``continuous``): the suite runs alternately
    under the baseline's and the candidate's interpreter, A B B A …, each run a fresh
    process; pairs of neighbouring runs are the replicates (``gate_paired_runs``)."""
    import sys

    from harness.comparison.gate import GateSettings, gate_paired_runs
    from harness.records.results import load_run

    if args.pairs < 2:
        raise HarnessError("--pairs must be >= 2")
    baseline_py = args.baseline_python
    candidate_py = args.candidate_python or sys.executable
    for py in (baseline_py, candidate_py):
        if not (Path(py).is_file() and os.access(py, os.X_OK)):
            raise HarnessError(f"{py}: no such Python interpreter (give the path of its python)")
    settings = GateSettings(thresholds=_thresholds(args), alpha=args.alpha)
    console = make_console(args.quiet)
    pairs = []
    for i in range(args.pairs):
        order = ("a", "b") if i % 2 == 0 else ("b", "a")
        runs = {}
        for side in order:
            py = baseline_py if side == "a" else candidate_py
            runs[side] = _suite_run(py, args, args.out / f"abba-{side}")
            console.print(f"pair {i + 1}/{args.pairs}: {side} done ({runs[side].name})")
        pairs.append((load_run(runs["a"]), load_run(runs["b"])))
    rows, warnings = gate_paired_runs(pairs, settings)
    for w in warnings:
        console.print(f"[yellow]environments differ: {w}[/yellow]")
    return _verdict(
        console,
        rows,
        settings,
        args,
        title="what moved (ABBA)",
        json_extra={},
        failed_suffix="",
        passed=f"over {args.pairs} ABBA pairs",
    )


def cmd_check_interleaved(args: argparse.Namespace) -> int:
    """Baseline and candidate checkpoints measured side by side in the same job: rounds in a
    random order inside each of several fresh processes, paired per round (harness compare's
    machinery with the gate's threshold as the minimum effect). Exit 1 on any "slower"."""
    from harness.comparison.arms import comparisons_of, run_comparison
    from harness.comparison.decide import CompareSettings
    from harness.execution.options import RunOptions
    from harness.records.results import load_run
    from harness.render.console import rich_table
    from harness.render.verdicts import summary_sentence, verdict_rows
    from harness.spec.sweep import load_sweep

    base_model = args.baseline_model or load_sweep(args.suite).models[0]
    aa = args.candidate == base_model  # an A/A gate: the baseline against a second copy
    models = (base_model,) if aa else (base_model, args.candidate)
    spec = interleave_spec(args)  # flags first, then every checkpoint and the corpus
    if args.processes < 1:
        raise HarnessError("--processes must be >= 1")
    planned = _planned_suite(args, models)
    sweep, corpus = planned.sweep, planned.corpus
    threshold = args.threshold if args.threshold is not None else 0.05
    settings = CompareSettings(margin=min(0.02, threshold), min_effect=threshold, alpha=args.alpha)
    opts = RunOptions(cache_dir=args.cache_dir or default_cache(), corpus=corpus)
    console = make_console(args.quiet)
    path = run_comparison(
        sweep,
        args.out,
        opts,
        settings=settings,
        interleave=spec,
        processes=args.processes,
        aa=aa,
    )
    (cmp,) = comparisons_of(load_run(path), settings)
    console.print(rich_table(verdict_rows(cmp), f"{cmp.candidate} vs {cmp.baseline}"))
    console.print(summary_sentence(cmp))
    slower = [r for r in cmp.results if r.verdict == "slower"]
    failed = [r for r in cmp.results if r.verdict == "invalid"]
    if args.json:
        args.json.write_text(json.dumps(cmp.to_dict(), indent=2))
    if failed:
        raise HarnessError(f"{len(failed)} case(s) could not be measured; see {path}")
    if slower:
        console.print(f"[red]{len(slower)} case(s) slower beyond {100 * threshold:g} %[/red]")
        return EXIT_REGRESSION
    console.print(f"no regression beyond {100 * threshold:g} % ({path})")
    return EXIT_OK


def _refresh(args: argparse.Namespace) -> int:
    target: Path = args.refresh_baseline
    staging = target.parent / (target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    run_dir = _run_suite(args, staging)
    for junk in [*run_dir.glob("*.png"), run_dir / ".lock"]:
        junk.unlink(missing_ok=True)
    if target.exists():
        shutil.rmtree(target)
    run_dir.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    make_console().print(f"baseline refreshed: {target} (commit it)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="Gate CI: a candidate checkpoint in the same job, or a run against a stored baseline.",
    )
    p.add_argument("--baseline", type=Path, help="baseline run directory")
    p.add_argument("--run", type=Path, help="a finished candidate run (default: run the suite now)")
    p.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    p.add_argument("--threshold", type=float, help="one threshold for every metric (0.05 = 5 %%)")
    p.add_argument(
        "--metric", action="append", help="per metric, e.g. p90=10%% or memory=0.2 (repeatable)"
    )
    p.add_argument(
        "--repeat", type=int, help="run the suite this many times (runs become the replicates)"
    )
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--allow-incomparable", action="store_true")
    p.add_argument(
        "--normalize",
        action="store_true",
        help="divide out the machine speed probe timed before each case (harness/calibrate.py)",
    )
    p.add_argument(
        "--refresh-baseline",
        type=Path,
        metavar="DIR",
        help="run the suite and make it the baseline",
    )
    p.add_argument(
        "--candidate",
        help="interleaved gate: this checkpoint against --baseline-model in the same job",
    )
    p.add_argument("--baseline-model", help="with --candidate (default: the suite's first model)")
    p.add_argument(
        "--baseline-python",
        help="ABBA gate: the baseline environment's interpreter (e.g. the base commit's venv)",
    )
    p.add_argument("--candidate-python", help="with --baseline-python (default: this interpreter)")
    p.add_argument("--pairs", type=int, default=3, help="with --baseline-python: ABBA pairs")
    add_interleave_args(p)  # with --candidate
    p.add_argument("--json", type=Path, help="write every row as JSON here")
    p.add_argument("--all", action="store_true", help="show every metric, not only what moved")
    p.add_argument("--corpus", type=Path)
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_check)
