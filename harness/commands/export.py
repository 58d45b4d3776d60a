"""``harness export RUN --format gab-smaller|gab-bigger``: github-action-benchmark JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_OK

__all__ = ["register"]


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import to_github_action_benchmark
    from ..results import load_run
    from ..store import write_atomic

    data = json.dumps(to_github_action_benchmark(load_run(args.run), args.format), indent=2) + "\n"
    if args.out:
        write_atomic(args.out, data)
    else:
        sys.stdout.write(data)
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a run for github-action-benchmark")
    p.add_argument("run", type=Path)
    p.add_argument("--format", choices=("gab-smaller", "gab-bigger"), default="gab-smaller")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)
