"""Capacity search: the highest offered QPS whose Server run LoadGen calls valid.

Pure over a ``probe(qps) -> passed`` callable. The answer is a *bracket*: the highest QPS that
passed and the lowest that failed above it, narrowed by bisection until its width is within
``rel_tol`` of the upper end (or ``max_probes`` ran). The upper start is the Offline
throughput, which no Server load can exceed. Latency against load is monotone only in
expectation, so a probe's outcome is trusted as LoadGen gives it; the bracket is what a
comparison of two capacities can rely on (:func:`compare_brackets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Capacity", "compare_brackets", "find_capacity"]


@dataclass(frozen=True)
class Capacity:
    #: The highest QPS that passed (0 when none did).
    qps: float
    #: The lowest QPS that failed above ``qps`` (the search's upper start when none failed).
    fail_qps: float
    #: ``(qps, passed)`` in the order probed.
    probes: tuple[tuple[float, bool], ...]
    #: Why the search stopped: ``converged``, ``max_probes``, ``upper_passed``, ``none_passed``.
    stop: str

    @property
    def resolution(self) -> float:
        """Width of the bracket relative to its top."""
        return (self.fail_qps - self.qps) / self.fail_qps if self.fail_qps else 0.0


def find_capacity(
    probe: Callable[[float], bool],
    upper: float,
    rel_tol: float = 0.05,
    max_probes: int = 10,
    floor: float | None = None,
) -> Capacity:
    """Probe near ``upper`` first, then halve until a load passes (down to ``floor``, default
    ``upper / 64``), then bisect the bracket until it is within ``rel_tol``."""
    if upper <= 0:
        raise ValueError("upper must be > 0")
    lowest = floor if floor is not None else upper / 64
    probes: list[tuple[float, bool]] = []

    def run(q: float) -> bool:
        ok = probe(q)
        probes.append((q, ok))
        return ok

    # A checkpoint that keeps up with ~all its offline throughput is done in one probe.
    # Low loads are probed last: at a few QPS a run of LoadGen's minimum query count is long.
    hi = 0.95 * upper
    if run(hi):
        return Capacity(hi, upper, tuple(probes), "upper_passed")
    lo = max(lowest, hi / 2)
    while not run(lo):
        hi = lo
        if lo <= lowest or len(probes) >= max_probes:
            return Capacity(0.0, lo, tuple(probes), "none_passed")
        lo = max(lowest, lo / 2)
    while (hi - lo) / hi > rel_tol:
        if len(probes) >= max_probes:
            return Capacity(lo, hi, tuple(probes), "max_probes")
        mid = (lo + hi) / 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return Capacity(lo, hi, tuple(probes), "converged")


def compare_brackets(
    baseline: Capacity, candidate: Capacity, margin: float = 0.0
) -> tuple[str, float, tuple[float, float]]:
    """Candidate vs baseline capacity: the verdict, the ratio of the passing QPS, and the
    range of ratios the two brackets allow. ``fewer``/``more`` only when that whole range is
    below ``1 - margin`` / above ``1 + margin``; otherwise ``within resolution``. A bracket
    holds only the search's resolution, not run-to-run noise: ``margin`` is where that noise
    goes (repeated runs of one command on a shared VM differ by several percent)."""
    if baseline.qps <= 0 or candidate.qps <= 0:
        return "no capacity", float("nan"), (float("nan"), float("nan"))
    ratio = candidate.qps / baseline.qps
    lowest = candidate.qps / baseline.fail_qps
    highest = candidate.fail_qps / baseline.qps
    if highest < 1 - margin:
        verdict = "fewer"
    elif lowest > 1 + margin:
        verdict = "more"
    else:
        verdict = "within resolution"
    return verdict, ratio, (lowest, highest)
