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

from ..cache import default_cache_dir

__all__ = [
    "DEFAULT_OUT",
    "default_cache",
    "ints",
    "make_console",
    "package_version",
    "progress_bar",
    "run_options",
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
    """The :class:`~harness.runner.RunOptions` every measuring command builds from its flags."""
    from ..runner import RunOptions

    return RunOptions(
        cache_dir=args.cache_dir or default_cache(),
        corpus=corpus,
        allow_pickle=getattr(args, "allow_pickle", False),
        allow_custom_code=getattr(args, "ignore_custom_code", False),
        **extra,
    )


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
