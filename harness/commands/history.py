"""``harness history add RUN`` / ``harness history show``: metrics over commits, step changes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands.common import make_console
from harness.errors import EXIT_OK, HarnessError

__all__ = ["register"]

DEFAULT_STORE = Path(".benchmarks/history")


def cmd_history(args: argparse.Namespace) -> int:
    from harness.records.history import add_run, load_series
    from harness.records.results import load_run
    from harness.render.console import rich_table

    console = make_console()
    if args.action == "add":
        if not args.runs:
            raise HarnessError("history add needs one or more run directories")
        for run_dir in args.runs:
            console.print(f"added {add_run(args.store, load_run(run_dir))}")
        return EXIT_OK
    series = load_series(args.store, args.metric, args.case or "")
    rows = []
    for s in series:
        steps = {c.index: c for c in s.change_points}
        for i, (sha, created, value) in enumerate(zip(s.commits, s.created, s.values, strict=True)):
            step = steps.get(i)
            rows.append(
                {
                    "case": s.case_id,
                    "commit": sha,
                    "created": created[:19],
                    args.metric: f"{value:.6g}",
                    "change point": f"{100 * step.change:+.1f}% (p={step.p_value:.3f})"
                    if step
                    else "",
                }
            )
    console.print(rich_table(rows, f"history of {args.metric}"))
    flagged = [(s, c) for s in series for c in s.change_points]
    for s, c in flagged:
        console.print(
            f"step change in {s.case_id} at {s.commits[c.index]}: {100 * c.change:+.1f}% (p={c.p_value:.3f})"
        )
    if not flagged:
        console.print("no step change detected")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="Keep metrics over commits and find step changes in them.")
    p.add_argument("action", choices=("add", "show"))
    p.add_argument("runs", nargs="*", type=Path, help="run directories (for add)")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--metric", default="p50", help="p50, p90, throughput or memory")
    p.add_argument("--case", help="only case ids containing this")
    p.set_defaults(func=cmd_history)
