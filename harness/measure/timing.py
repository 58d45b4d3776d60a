"""The measurement loop: warmup, then samples until the median is pinned down or time is up.

Timers are injectable. :class:`PerfCounterTimer` times one call on the host, calling ``sync``
before reading the clock so asynchronous devices are not under-counted; tests pass a fake
timer with a known cost per call and check exact counts. Samples are one call each: an
encoder forward is milliseconds, so timer overhead (~100 ns) is far below the noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from harness.measure.gcpause import paused_gc
from harness.spec.config import MeasureSpec
from harness.stats.summary import median_rel_ci, normalize_by_batch

__all__ = ["PerfCounterTimer", "Samples", "Timer", "measure"]


class Timer(Protocol):
    def now(self) -> float:
        """Wall time in seconds, for the time budget."""
        ...

    def time(self, fn: Callable[[], object]) -> float:
        """Seconds one call of ``fn`` takes, including any device work it started."""
        ...


@dataclass
class PerfCounterTimer:
    """Host clock around the call; ``sync`` (e.g. ``torch.cuda.synchronize``) before reading."""

    sync: Callable[[], None] | None = None

    def now(self) -> float:
        return time.perf_counter()

    def time(self, fn: Callable[[], object]) -> float:
        if self.sync is not None:
            self.sync()
        start = time.perf_counter()
        fn()
        if self.sync is not None:
            self.sync()
        return time.perf_counter() - start


@dataclass
class Samples:
    """Raw per-call seconds: warmup kept apart from the values statistics are computed on."""

    warmup: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stop_reason: str = ""
    rel_ci: float | None = None
    wall_s: float = 0.0


def measure(timer: Timer, calls: Sequence[Callable[[], object]], spec: MeasureSpec) -> Samples:
    """Time ``calls`` round-robin until the stop rule holds.

    Warmup is ``max(spec.warmup_iters, len(calls))`` calls, so every batch of a workload runs
    once before timing (first calls at a new shape pay for allocation and, for TorchScript,
    profiling). The stop rule is checked only after whole passes over ``calls``, so each
    batch of a real-text workload is equally represented: stop when the relative half-width
    of the 95 % CI of the median (of per-batch-normalized samples, see
    :func:`harness.stats.summary.normalize_by_batch`) is at most ``target_rel_ci`` (``converged``), when
    ``max_time_s`` of wall time has passed (``time_budget``), or at ``max_iters``.
    """
    if not calls:
        raise ValueError("measure needs at least one call")
    with paused_gc():  # no collection lands inside a timed call (harness.measure.gcpause)
        return _measure(timer, calls, spec)


def _measure(timer: Timer, calls: Sequence[Callable[[], object]], spec: MeasureSpec) -> Samples:
    out = Samples()
    n_warm = max(spec.warmup_iters, len(calls))
    for i in range(n_warm):
        out.warmup.append(timer.time(calls[i % len(calls)]))
    start = timer.now()
    i = 0
    while True:
        out.values.append(timer.time(calls[i % len(calls)]))
        i += 1
        elapsed = timer.now() - start
        whole_pass = i % len(calls) == 0
        if i >= spec.min_iters and whole_pass:
            out.rel_ci = median_rel_ci(normalize_by_batch(out.values, len(calls)))
            if out.rel_ci <= spec.target_rel_ci:
                out.stop_reason = "converged"
                break
        if i >= spec.max_iters:
            out.stop_reason = "max_iters"
            break
        if elapsed >= spec.max_time_s and i >= spec.min_iters:
            out.stop_reason = "time_budget"
            break
    out.rel_ci = median_rel_ci(normalize_by_batch(out.values, len(calls)))
    out.wall_s = timer.now() - start
    return out
