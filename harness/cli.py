"""Command line: a thin shell over the library and the only module that prints.

Exit codes: 0 ok · 1 a performance regression was found (``check``) · 2 usage, configuration
or input error (one line on stderr, no traceback) · 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .cache import default_cache_dir
from .errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, HarnessError
from .quiet import quiet_libraries

__all__ = ["main"]

DEFAULT_OUT = Path("reports")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xlmr-harness")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def default_cache() -> Path:
    return default_cache_dir()


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


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HarnessError(f"{self.prog}: {message}")


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from .commands import MODULES

    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        code: int = args.func(args)
        return code
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted: finished cases are recorded; continue with --resume RUN_DIR",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:
        traceback.print_exc()
        print(
            "internal error: this is a bug in the harness, not in your input; the traceback "
            "is above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
