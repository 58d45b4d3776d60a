"""Pure statistics on lists of seconds. No I/O, no formatting, no torch.

* :func:`summarize` — percentiles, mean, std and self-diagnosed stability warnings (pyperf's
  checks, torch.utils.benchmark's IQR/median rule), stored with the data.
* :func:`median_rel_ci` — distribution-free CI of the median (binomial order statistics), the
  measurement loop's stop rule.
* :func:`adjust` — Holm or Benjamini-Hochberg over a family of p-values.

Comparisons of two sets of timings live in :mod:`harness.stats.hierarchy`, where the replicate is
chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.records.types import Summary as RecordSummary

__all__ = [
    "Summary",
    "adjust",
    "by_batch",
    "median_rel_ci",
    "summarize",
]


def by_batch(values: Sequence[float] | np.ndarray, n_batches: int) -> list[np.ndarray]:
    """The samples split by the batch each call ran (call *k* ran batch ``k % n_batches``);
    batches no call reached are left out, and with none at all the samples stay whole."""
    x = np.asarray(values, dtype=float)
    k = max(1, n_batches)
    return [x[s::k] for s in range(k) if x[s::k].size] or [x]


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    iqr: float
    rel_ci: float
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_record(self) -> RecordSummary:
        """The record's ``summary`` part (:class:`harness.records.types.Summary`)."""
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "max": self.max,
            "iqr": self.iqr,
            "rel_ci": self.rel_ci,
            "warnings": list(self.warnings),
        }


def median_rel_ci(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half-width of the order-statistic CI of the median, relative to the median.

    The ranks come from Binomial(n, 1/2), so no distribution is assumed; with fewer than
    6 samples no 95 % interval exists and the answer is infinity.
    """
    n = len(values)
    if n < 6:
        return math.inf
    x = np.sort(np.asarray(values, dtype=float))
    alpha = 1.0 - confidence
    # Order statistics x_(k) and x_(n-k+1), k from the binomial quantile (1-based ranks).
    k = int(sps.binom.ppf(alpha / 2, n, 0.5))
    lo, hi = max(k - 1, 0), min(n - k, n - 1)
    med = float(np.median(x))
    if med <= 0:
        return math.inf
    return float((x[hi] - x[lo]) / (2 * med))


def normalize_by_batch(values: Sequence[float], n_batches: int) -> list[float]:
    """Each sample divided by the median of the samples of the same batch.

    A real-text workload cycles through batches of different sizes, so its raw samples mix
    real differences in work with noise. Dividing by the per-batch median leaves the noise
    alone, which is what stability checks and the stop rule must look at.
    """
    if n_batches <= 1:
        return list(values)
    x = np.asarray(values, dtype=float)
    out = np.empty_like(x)
    for b in range(n_batches):
        part = x[b::n_batches]
        out[b::n_batches] = part / np.median(part)
    return [float(v) for v in out]


#: A cell is *unstable* when the 95 % CI of its median is wider than ±5 % (or twice the
#: case's target, if that is looser): its p50 is then not a number to compare or quote.
UNSTABLE_REL_CI = 0.05


def is_unstable(rel_ci: float, target_rel_ci: float = 0.0) -> bool:
    return not rel_ci <= max(UNSTABLE_REL_CI, 2 * target_rel_ci)


def summarize(values: Sequence[float], n_batches: int = 1) -> Summary:
    """Summary statistics plus the stability warnings a reader should see next to them.

    Percentiles are of the raw samples; ``rel_ci`` and the warnings are computed on
    :func:`normalize_by_batch` values, so a workload of different batches is not called
    unstable for being heterogeneous.
    """
    if not values:
        raise ValueError("no samples")
    x = np.asarray(values, dtype=float)
    p25, p50, p75, p90, p99 = np.percentile(x, [25, 50, 75, 90, 99])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    norm = np.asarray(normalize_by_batch(values, n_batches))
    rel_ci = median_rel_ci(list(norm))
    q25, q50, q75 = np.percentile(norm, [25, 50, 75])
    nmean, nstd = float(norm.mean()), float(norm.std(ddof=1)) if norm.size > 1 else 0.0
    warnings: list[str] = []
    if x.size < 10:
        warnings.append(f"only {x.size} samples")
    if q50 > 0 and (q75 - q25) / q50 > 0.10:
        warnings.append(f"IQR is {100 * (q75 - q25) / q50:.0f}% of the median")
    if q50 > 0 and norm.max() > 1.5 * q50:
        warnings.append(f"max is {norm.max() / q50:.1f}x the median (outliers)")
    if nmean > 0 and nstd / nmean > 0.10:
        warnings.append(f"std is {100 * nstd / nmean:.0f}% of the mean")
    if p50 < 1e-4:
        warnings.append("median below 0.1 ms: timer overhead is not negligible")
    return Summary(
        n=int(x.size),
        mean=mean,
        std=std,
        min=float(x.min()),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        max=float(x.max()),
        iqr=float(p75 - p25),
        rel_ci=rel_ci,
        warnings=tuple(warnings),
    )


def adjust(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Multiplicity-adjusted p-values (Holm's step-down FWER or Benjamini-Hochberg FDR)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    elif method == "none":
        adj = ranked
    else:
        raise ValueError(f"unknown multiplicity method {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(v) for v in out]
