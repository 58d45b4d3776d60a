"""``harness report RUN``: (re)write a run's Markdown/HTML report and print its table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands.common import make_console
from harness.errors import EXIT_OK

__all__ = ["register"]


def cmd_report(args: argparse.Namespace) -> int:
    from harness.records.results import load_run
    from harness.render.console import rich_table
    from harness.render.rows import result_rows
    from harness.render.run_report import write_run_report

    run = load_run(args.run)
    console = make_console()
    if run.meta.kind == "compare":
        from harness.render.comparison import write_compare_report

        report = write_compare_report(run)
    elif run.meta.kind == "serve":
        from harness.render.run_report import write_serve_report
        from harness.render.serving import capacity_rows

        report = write_serve_report(run)
        console.print(rich_table(capacity_rows(run.latest()), run.meta.run_id))
    else:
        report = write_run_report(run, min_cosine=args.min_cosine)
        console.print(rich_table(result_rows(run.latest()), run.meta.run_id))
    console.print(f"report: {report}  (and report.html)")
    return EXIT_OK


def _cosine(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a cosine in (0, 1], not {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="Write a run's report again (Markdown, HTML, plots).")
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument(
        "--min-cosine",
        type=_cosine,
        default=0.99,
        help='Accuracy floor of the CPU report\'s "which to pick": the least mean cosine to '
        "eager float32 a variant may have (default 0.99).",
    )
    p.set_defaults(func=cmd_report)
