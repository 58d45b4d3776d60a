"""``harness export RUN --format gab-smaller|gab-bigger|csv|parquet``: github-action-benchmark
JSON, or one flat row per case."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.errors import EXIT_OK, HarnessError

__all__ = ["register"]


def cmd_export(args: argparse.Namespace) -> int:
    from harness.records.export import to_github_action_benchmark, write_table
    from harness.records.results import load_run
    from harness.records.store import write_atomic

    if args.format in ("csv", "parquet"):
        if args.out is None:
            raise HarnessError(f"--format {args.format} needs --out FILE")
        run = load_run(args.run)
        write_table(run, args.out, args.format)
        print(f"{len(run.latest())} row(s) written to {args.out}")
        return EXIT_OK
    data = json.dumps(to_github_action_benchmark(load_run(args.run), args.format), indent=2) + "\n"
    if args.out:
        write_atomic(args.out, data)
    else:
        sys.stdout.write(data)
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="Export a run as github-action-benchmark JSON, or CSV or Parquet rows."
    )
    p.add_argument("run", type=Path)
    from harness.records.export import FORMATS

    p.add_argument("--format", choices=FORMATS, default="gab-smaller")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)
