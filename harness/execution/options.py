"""What every measuring entry point passes down: the run's options and its events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.timing import Timer

__all__ = ["Event", "RunOptions"]


#: ``("start", case_id)`` or ``("done", record)``; the CLI turns these into a progress bar.
Event = tuple[str, Any]


@dataclass
class RunOptions:
    cache_dir: Path
    corpus: Path | None = None
    allow_pickle: bool = False
    #: Load a checkpoint whose config asks for custom code as plain XLM-R (never running it).
    allow_custom_code: bool = False
    timer: Timer | None = None
    isolate: bool = False
    group_timeout_s: float | None = None
    #: The watchdog: an isolated worker that reports nothing for this long (a call that
    #: never returns) is killed and its case recorded as an error; the sweep goes on.
    case_timeout_s: float | None = 1800.0
    #: A ceiling on an isolated worker's address space (bytes; None: none), so a case that
    #: exhausts it fails "out of memory" in its worker instead of swapping the machine.
    worker_memory_bytes: int | None = None
    repeat: int = 0
