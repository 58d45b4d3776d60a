"""The library's warnings meant for the user (a damaged records file, a cache entry built
again) shown as one line each on stderr, in the CLI's process and in its workers alike."""

from __future__ import annotations

import sys
import warnings
from typing import TextIO

from harness.cache import CacheRebuiltWarning
from harness.records.results import DamagedRecordsWarning

__all__ = ["USER_WARNINGS", "show_user_warnings"]

USER_WARNINGS: tuple[type[Warning], ...] = (DamagedRecordsWarning, CacheRebuiltWarning)
_default = warnings.showwarning


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if issubclass(category, USER_WARNINGS):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def show_user_warnings() -> None:
    """Every user warning printed as one line, each time it happens."""
    warnings.showwarning = _show
    for category in USER_WARNINGS:
        warnings.simplefilter("always", category)
