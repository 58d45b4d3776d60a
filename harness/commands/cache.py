"""``harness cache``: list the cache's entries with their sizes, verify them, clear them."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from harness.commands.common import default_cache, make_console
from harness.errors import EXIT_CASES_FAILED, EXIT_OK, HarnessError

__all__ = ["register"]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cmd_cache(args: argparse.Namespace) -> int:
    from harness.cache import entries, remove

    cache: Path = args.cache_dir or default_cache()
    if not cache.is_dir():
        raise HarnessError(f"{cache}: no cache here (set --cache-dir or $HARNESS_CACHE)")
    found = entries(cache)
    if args.kind:
        found = [e for e in found if e.kind.startswith(args.kind)]
    console = make_console()
    if args.action == "clear":
        for e in found:
            if e.path.is_dir():
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                remove(e.path)
        console.print(f"removed {len(found)} entr{'y' if len(found) == 1 else 'ies'} from {cache}")
        return EXIT_OK
    bad = 0
    for e in found:
        status = ""
        if args.action == "verify":
            problem = e.problem(hashes=True)
            status = (
                "  no manifest (written before manifests)"
                if e.manifest is None
                else f"  DAMAGED: {problem}"
                if problem
                else "  ok"
            )
            bad += problem is not None
        console.print(f"{e.kind:18s} {_size(e.bytes):>10s}  {e.path}{status}", highlight=False)
    total = sum(e.bytes for e in found)
    console.print(f"{len(found)} entries, {_size(total)} in {cache}", highlight=False)
    if bad:
        console.print(
            f"{bad} damaged entr{'y' if bad == 1 else 'ies'}: the next run rebuilds "
            "them, or `harness cache clear` removes everything"
        )
        return EXIT_CASES_FAILED
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cache",
        help="List the cache's entries (built checkpoints, ONNX graphs, tokenizers); verify "
        "or clear them.",
    )
    p.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "verify", "clear"),
        help="list (default); verify every file's size and SHA-256 against its manifest "
        "(exit 3 when one is damaged); clear",
    )
    p.add_argument("--kind", help="only entries of this kind (checkpoint, onnx, tokenizer, ...)")
    p.add_argument("--cache-dir", type=Path, help="default $HARNESS_CACHE or ~/.cache/xlmr-harness")
    p.set_defaults(func=cmd_cache)
