"""xlmr-harness: what does an XLM-R checkpoint cost to serve, and is B cheaper than A?

The library behind the ``harness`` command, with the same checks: every function below
checks its whole input first and raises :class:`HarnessError` (the CLI's one-line message)
having written nothing. See :mod:`harness.api` for an example.
"""

from __future__ import annotations

from harness.api import (
    check_output,
    compare,
    compare_runs,
    export_rows,
    gate,
    load,
    run,
    sweep_spec,
)
from harness.errors import HarnessError

__all__ = [
    "HarnessError",
    "check_output",
    "compare",
    "compare_runs",
    "export_rows",
    "gate",
    "load",
    "run",
    "sweep_spec",
]
