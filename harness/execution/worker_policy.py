"""What happens when a worker dies mid-group — one policy for local workers and Ray tasks.

The case the worker was on is blamed and recorded as an error with the reason; after a kill
that looks like the out-of-memory killer, the group's larger synthetic shapes are recorded
``skipped`` (they would die the same way, slowly); the rest go to a fresh worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.execution.options import Event
from harness.records.results import error_record
from harness.records.store import RecordSink
from harness.spec.sweep import Case

__all__ = ["after_worker_death", "blamed_case"]


def after_worker_death(
    remaining: list[Case],
    current: str | None,
    message: str,
    store: RecordSink,
    emit: Callable[[Event], None],
    *,
    killed: bool = False,
    **extra: Any,
) -> list[Case]:
    """Record the blamed case (and, after a kill, the shapes it rules out); return the cases
    still to run. ``extra`` goes into the error record (the Ray node, for instance)."""
    if not remaining:
        return []
    blamed = next((c for c in remaining if c.case_id == current), remaining[0])
    rec = error_record(blamed, "error", message, **extra)
    store.append(rec)
    emit(("done", rec))
    pending = [c for c in remaining if c is not blamed]
    if killed:
        limit = blamed.batch_size * blamed.seq_len
        for c in [c for c in pending if c.batch_size * c.seq_len >= limit and c.language is None]:
            skip = error_record(
                c, "skipped", f"a smaller shape ({limit} tokens) was killed (out of memory)"
            )
            store.append(skip)
            emit(("done", skip))
            pending.remove(c)
    return pending


def blamed_case(remaining: list[Case], current: str | None) -> Case:
    """The case a dead worker was on (the first pending one when it said nothing)."""
    return next((c for c in remaining if c.case_id == current), remaining[0])
