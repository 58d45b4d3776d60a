"""The one user-facing error type.

Anything a user can cause (a wrong flag, a missing file, a model that is not XLM-R) raises
:class:`HarnessError`. The CLI turns it into one line on stderr and exit code 2; everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CASES_FAILED",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_TERMINATED",
    "HarnessError",
    "Terminated",
]

#: Exit codes, as the README's table lists them.
EXIT_OK = 0
#: ``check`` found a regression (and only ``check`` uses 1).
EXIT_REGRESSION = 1
#: Usage, configuration or input error: one line on stderr, nothing written.
EXIT_ERROR = 2
#: The run finished, but at least one case ended ``error`` or ``invalid`` (listed on stderr).
EXIT_CASES_FAILED = 3
#: A bug in the harness itself (the traceback is printed).
EXIT_INTERNAL = 4
#: Interrupted (SIGINT); finished cases are kept, ``--resume`` continues.
EXIT_INTERRUPTED = 130
#: Terminated (SIGTERM, e.g. a cancelled CI job): like an interrupt, 128 + 15.
EXIT_TERMINATED = 143


class HarnessError(Exception):
    """A problem with the user's input, configuration or environment (exit code 2)."""

    exit_code: int = EXIT_ERROR


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds as an interrupt does: workers
    reaped, finished cases kept (exit code :data:`EXIT_TERMINATED`)."""


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: :class:`Terminated` in the main thread."""
    raise Terminated(f"signal {signum}")
