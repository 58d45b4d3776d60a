"""Command line: a thin shell over the library (``harness/commands/`` holds one file per
subcommand; the library never imports either).

Exit codes: 0 ok · 1 a performance regression was found (``check``) · 2 usage, configuration
or input error (one line on stderr, no traceback) · 3 some cases ended error/invalid · 4 a bug
in the harness · 130 interrupted · 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Sequence

from harness.commands.common import package_version
from harness.errors import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    HarnessError,
    Terminated,
    raise_terminated,
)
from harness.notices import show_user_warnings
from harness.quiet import quiet_libraries

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HarnessError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description="Measure what XLM-R checkpoints cost to serve (latency, throughput, memory) "
        "per backend, shape and language; compare checkpoints with verdicts that say how sure "
        "they are; gate CI on regressions. `harness COMMAND --help` tells more.",
        epilog="Exit codes: 0 ok; 1 a regression was found (check); 2 a usage, configuration "
        "or input error, one line on stderr, nothing written; 3 some cases ended error or "
        "invalid; 4 a bug in the harness; 130 interrupted; 143 terminated.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from harness.commands import MODULES

    for module in MODULES:
        module.register(sub)
    for action in sub._choices_actions:  # each command's page opens with its one-line help
        page = sub.choices[action.dest]
        page.description = page.description or action.help
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    show_user_warnings()
    signal.signal(signal.SIGTERM, raise_terminated)
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
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(
            f"{what}: finished cases are recorded; continue with --resume RUN_DIR",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
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
