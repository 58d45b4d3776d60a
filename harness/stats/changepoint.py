"""E-Divisive change-point detection (Matteson & James 2014), as Hunter / Apache Otava use it
on performance histories.

Pure numpy on a short series: find the split that maximises the energy statistic between the
two sides, keep it if a permutation test says it is significant, and recurse on both halves.
The permutation stream is seeded, so the same history always gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ChangePoint", "e_divisive"]


@dataclass(frozen=True, slots=True)
class ChangePoint:
    index: int  # first point of the new regime
    p_value: float
    before_mean: float
    after_mean: float

    @property
    def change(self) -> float:
        return self.after_mean / self.before_mean - 1 if self.before_mean else float("inf")


def _best_split(x: np.ndarray, min_size: int) -> tuple[int, float]:
    n = x.size
    d = np.abs(x[:, None] - x[None, :])
    best, where = -np.inf, -1
    for tau in range(min_size, n - min_size + 1):
        left, right = d[:tau, :tau], d[tau:, tau:]
        between = d[:tau, tau:].mean()
        within_l = left.sum() / (tau * (tau - 1)) if tau > 1 else 0.0
        within_r = right.sum() / ((n - tau) * (n - tau - 1)) if n - tau > 1 else 0.0
        q = tau * (n - tau) / n * (2 * between - within_l - within_r)
        if q > best:
            best, where = q, tau
    return where, float(best)


def e_divisive(
    values: Sequence[float],
    *,
    alpha: float = 0.01,
    permutations: int = 499,
    min_size: int = 3,
    seed: int = 0,
) -> list[ChangePoint]:
    """Change points of ``values`` in order; each has its permutation p-value."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    segments = [(0, x.size)]
    while segments:
        lo, hi = segments.pop()
        seg = x[lo:hi]
        if seg.size < 2 * min_size:
            continue
        tau, stat = _best_split(seg, min_size)
        exceed = sum(
            _best_split(rng.permutation(seg), min_size)[1] >= stat for _ in range(permutations)
        )
        p = (exceed + 1) / (permutations + 1)
        if p >= alpha:
            continue
        found.append(ChangePoint(lo + tau, p, float(seg[:tau].mean()), float(seg[tau:].mean())))
        segments += [(lo, lo + tau), (lo + tau, hi)]
    return sorted(found, key=lambda c: c.index)
