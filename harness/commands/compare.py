"""``harness compare``: checkpoints interleaved (``-m A -m B``), or two finished runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands.common import (
    DEFAULT_OUT,
    add_limit_args,
    make_console,
    progress_bar,
    run_options,
)
from harness.commands.run import add_sweep_args, prepare_sweep
from harness.comparison.spec import InterleaveSpec
from harness.errors import EXIT_OK, HarnessError

__all__ = [
    "add_interleave_args",
    "add_stat_args",
    "interleave_spec",
    "register",
    "settings_from_args",
]

#: Fresh processes per comparison: the process is the replicate, and a process can favour one
#: arm by ~2 % (README, "How it compares"), which only more processes average out.
DEFAULT_PROCESSES = 10


def add_stat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margin", type=float, default=0.02, help="equivalence bound (0.02 = ±2 %%)")
    p.add_argument(
        "--min-effect", type=float, default=0.03, help="smallest change called a difference"
    )
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--correction", choices=("holm", "bh", "none"), default="holm")


def settings_from_args(args: argparse.Namespace) -> Any:
    from harness.comparison.decide import CompareSettings

    return CompareSettings(
        margin=args.margin, min_effect=args.min_effect, alpha=args.alpha, correction=args.correction
    )


def add_interleave_args(p: argparse.ArgumentParser, processes: int = DEFAULT_PROCESSES) -> None:
    """How arms are interleaved (``harness compare -m``, ``harness check --candidate``)."""
    d = InterleaveSpec()
    p.add_argument(
        "--processes",
        type=int,
        default=processes,
        help="fresh processes, the replicate of the analysis (default %(default)s)",
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help="rounds per process")
    p.add_argument("--block", type=int, default=d.block, help="least timed calls per arm per round")
    p.add_argument("--block-s", type=float, default=d.block_s, help="least timed seconds per block")
    p.add_argument(
        "--block-warmup-s",
        type=float,
        default=d.warmup_s,
        help="untimed seconds (at least one call) at the start of every block",
    )
    p.add_argument(
        "--no-solo",
        action="store_true",
        help="skip the check that each arm's interleaved p50 matches it run alone",
    )
    p.add_argument(
        "--seed", type=int, help="seed of the round orders (default: a fresh one, recorded)"
    )


def interleave_spec(args: argparse.Namespace) -> Any:
    from harness.comparison.arms import fresh_seed

    return InterleaveSpec(
        rounds=args.rounds,
        block=args.block,
        block_s=args.block_s,
        warmup_s=args.block_warmup_s,
        solo=not args.no_solo,
        seed=fresh_seed() if args.seed is None else args.seed,
    )


def _compare_capacity(args: argparse.Namespace) -> int:
    from harness.records.store import write_atomic
    from harness.serving.compare import compare_capacity_runs

    a, b = args.runs
    if not 0 <= args.capacity_margin < 1:
        raise HarnessError("--capacity-margin must be in [0, 1)")
    results, warnings = compare_capacity_runs(
        a, b, margin=args.capacity_margin, strict=not args.allow_incomparable
    )
    console = make_console()
    for r in results:
        console.print(f"{r.key.split('/', 1)[1]}: {r.sentence()}")
    for w in warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        payload = {"metric": "capacity", "comparisons": [r.to_dict() for r in results]}
        write_atomic(args.report.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
        console.print(f"report: {args.report.with_suffix('.json')}")
    return EXIT_OK


def _compare_dirs(args: argparse.Namespace) -> int:
    from harness.serving.compare import is_serve_run

    if any(is_serve_run(p) for p in args.runs):
        return _compare_capacity(args)
    from harness.comparison.arms import compare_run_dirs
    from harness.records.store import write_atomic
    from harness.render.comparison import comparison_markdown
    from harness.render.console import rich_table
    from harness.render.verdicts import summary_sentence, verdict_rows

    a, b = args.runs
    cmp = compare_run_dirs(a, b, settings_from_args(args), strict=not args.allow_incomparable)
    console = make_console()
    console.print(rich_table(verdict_rows(cmp), f"{cmp.candidate} vs {cmp.baseline}"))
    console.print(summary_sentence(cmp).replace("**", "").replace("`", ""))
    for w in cmp.warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        from harness.render.html import markdown_to_html

        text = comparison_markdown(cmp, args.report.parent, heading="#")
        write_atomic(args.report, text)
        write_atomic(args.report.with_suffix(".json"), json.dumps(cmp.to_dict(), indent=2) + "\n")
        title = f"{cmp.candidate} vs {cmp.baseline}"
        html = markdown_to_html(text, args.report.parent, title)
        write_atomic(args.report.with_suffix(".html"), html)
        console.print(f"report: {args.report} (and .json, .html)")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    if args.runs:
        if len(args.runs) != 2 or args.models:
            raise HarnessError("compare takes two run directories, or checkpoints with -m")
        return _compare_dirs(args)
    from harness.comparison.arms import run_comparison
    from harness.records.results import load_run
    from harness.render.comparison import write_compare_report
    from harness.render.console import rich_table
    from harness.render.verdicts import verdict_rows

    settings = settings_from_args(args)
    spec = interleave_spec(args)
    if args.processes < 1:
        raise HarnessError("--processes must be >= 1")
    args.isolate, args.inline = False, True
    from harness.api import check_output

    check_output(args.out)
    prepared = prepare_sweep(args)
    if prepared.skipped:  # a comparison that silently drops its language cases would mislead
        raise HarnessError(prepared.skipped[0][1])
    sweep, cases, corpus = prepared.sweep, prepared.cases, prepared.corpus
    opts = run_options(args, corpus)
    console = make_console(args.quiet)
    n_models = len({c.model.name for c in cases})
    total = (len(cases) + (len(cases) // n_models if args.aa else 0)) * args.processes
    progress, emit = progress_bar(console, total)
    with progress:
        path = run_comparison(
            sweep,
            args.out,
            opts,
            settings=settings,
            interleave=spec,
            aa=args.aa,
            processes=args.processes,
            emit=emit,
        )
    run = load_run(path)
    report = write_compare_report(run, settings)
    from harness.comparison.arms import AA_SUFFIX, comparisons_of
    from harness.comparison.noise import noise_floor
    from harness.render.verdicts import summary_sentence

    comparisons = comparisons_of(run, settings)
    aa = next((c for c in comparisons if c.candidate.endswith(AA_SUFFIX)), None)
    noise = noise_floor(aa) if aa is not None else None
    for cmp in comparisons:
        console.print(rich_table(verdict_rows(cmp), f"{cmp.candidate} vs {cmp.baseline}"))
        text = summary_sentence(cmp, None if cmp is aa else noise)
        console.print(text.replace("**", "").replace("`", ""))
    console.print(f"records: {path / 'records.jsonl'}\nreport:  {report}  (and report.html)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="Compare checkpoints interleaved in fresh processes, or two finished runs."
    )
    p.add_argument("runs", nargs="*", type=Path, help="two run directories (instead of -m)")
    add_sweep_args(p)
    add_stat_args(p)
    p.add_argument("--aa", action="store_true", help="add an A/A control arm (baseline vs itself)")
    add_interleave_args(p)
    add_limit_args(p)
    p.add_argument(
        "--allow-incomparable",
        action="store_true",
        help="compare runs from different environments (warn instead of refusing)",
    )
    p.add_argument("--report", type=Path, help="with two runs: write Markdown + JSON here")
    p.add_argument(
        "--capacity-margin",
        type=float,
        default=0.15,
        help="serve-bench runs: capacity changes within ±this are not called (run-to-run noise)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_compare)
