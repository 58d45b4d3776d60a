"""``harness fetch-tatoeba``: download XTREME's Tatoeba files from upstream (needs internet)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands.common import words
from harness.errors import EXIT_OK

__all__ = ["register"]


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness.inputs.corpus import (
        UPSTREAM,
        XTREME_CODES,
        XTREME_LANGUAGES,
        corpus_cache_dir,
        fetch_tatoeba,
    )

    dest = args.dest or corpus_cache_dir()
    langs = [XTREME_CODES.get(c, c) for c in (args.languages or XTREME_LANGUAGES)]
    written = fetch_tatoeba(dest, langs, args.url or UPSTREAM)
    print(f"{len(written)} file(s) written to {dest}")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fetch-tatoeba", help="Download the Tatoeba test files from upstream (needs internet)."
    )
    p.add_argument(
        "--dest",
        type=Path,
        help="target directory (default: $HARNESS_CACHE/tatoeba, where runs look)",
    )
    p.add_argument("--languages", type=words)
    p.add_argument("--url", help="base URL (default: LASER's repository)")
    p.set_defaults(func=cmd_fetch)
