"""What the subcommands share: the console, the progress bar, argument types and defaults.

The subcommands import these from here, and ``cli.py`` imports the subcommands: one
direction, no cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cache import default_cache_dir
from harness.errors import HarnessError

__all__ = [
    "DEFAULT_OUT",
    "add_limit_args",
    "add_task_settings_args",
    "byte_size",
    "default_cache",
    "ints",
    "make_console",
    "package_version",
    "progress_bar",
    "run_options",
    "task_settings",
    "words",
]

DEFAULT_OUT = Path("reports")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xlmr-harness")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def default_cache() -> Path:
    return default_cache_dir()


def run_options(args: argparse.Namespace, corpus: Path | None, **extra: Any) -> Any:
    """The :class:`~harness.execution.options.RunOptions` every measuring command builds from its flags."""
    from harness.execution.options import RunOptions

    limits: dict[str, Any] = {}
    if getattr(args, "case_timeout", None) is not None:
        if args.case_timeout <= 0:
            raise HarnessError("--case-timeout must be > 0 seconds")
        limits["case_timeout_s"] = args.case_timeout
    if getattr(args, "worker_memory", None) is not None:
        limits["worker_memory_bytes"] = args.worker_memory
    return RunOptions(
        cache_dir=args.cache_dir or default_cache(),
        corpus=corpus,
        allow_pickle=getattr(args, "allow_pickle", False),
        allow_custom_code=getattr(args, "ignore_custom_code", False),
        **limits,
        **extra,
    )


def byte_size(text: str) -> int:
    """``8G``, ``512M``, ``1.5GiB`` or a number of bytes."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in units else ""
    try:
        value = float(t[:-1] if unit else t) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 8G or 512M, got {text!r}"
        ) from None
    if value < 2**26:
        raise argparse.ArgumentTypeError(f"{text}: a worker needs at least 64M")
    return int(value)


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The watchdog and the worker memory ceiling (isolated workers: run, compare, check)."""
    p.add_argument(
        "--case-timeout",
        type=float,
        help="seconds without progress before the watchdog ends a worker and records its "
        "case as an error (default 1800)",
    )
    p.add_argument(
        "--worker-memory",
        type=byte_size,
        help="address-space ceiling of each worker, e.g. 8G: a case beyond it fails "
        "'out of memory' and the others go on",
    )


def add_task_settings_args(p: argparse.ArgumentParser) -> None:
    """The XTREME task settings a command may override (:class:`harness.spec.tasks.TaskSettings`)."""
    p.add_argument("--qa-max-len", type=int, help="qa: window length in tokens (default 384)")
    p.add_argument("--doc-stride", type=int, help="qa: tokens between window starts (default 128)")
    p.add_argument(
        "--qa-context-chars",
        type=int,
        help="qa: paragraph length, in characters of its English side (default 750)",
    )
    p.add_argument(
        "--retrieval-pool", type=int, help="retrieval: English candidates per query (default 500)"
    )


def task_settings(base: Any, args: argparse.Namespace) -> Any:
    """``base`` task settings with the command line's overrides (validated on creation)."""
    import dataclasses

    changes = {
        "qa_max_len": getattr(args, "qa_max_len", None),
        "doc_stride": getattr(args, "doc_stride", None),
        "qa_context_chars": getattr(args, "qa_context_chars", None),
        "retrieval_pool": getattr(args, "retrieval_pool", None),
    }
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


def make_console(quiet: bool = False) -> Console:
    """A console that does not squeeze tables to 80 columns when output is a pipe or file."""
    probe = Console()
    return Console(quiet=quiet, width=None if probe.is_terminal else 200)


def ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def progress_bar(
    console: Console, total: int
) -> tuple[Progress, Callable[[tuple[str, object]], None]]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("starting", total=total)

    def emit(event: tuple[str, object]) -> None:
        kind, payload = event
        if kind == "start":
            progress.update(task, description=str(payload))
        elif kind == "done":
            progress.advance(task)
        elif kind == "done-batch":
            progress.advance(task, int(str(payload)))

    return progress, emit
