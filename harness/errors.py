"""The one user-facing error type.

Anything a user can cause (a wrong flag, a missing file, a model that is not XLM-R) raises
:class:`HarnessError`. The CLI turns it into one line on stderr and exit code 2; everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REGRESSION", "HarnessError"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2


class HarnessError(Exception):
    """A problem with the user's input, configuration or environment (exit code 2)."""

    exit_code: int = EXIT_ERROR
