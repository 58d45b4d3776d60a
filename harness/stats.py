"""Pure statistics on lists of seconds. No I/O, no formatting, no torch.

* :func:`summarize` — percentiles, mean, std and self-diagnosed stability warnings (pyperf's
  checks, torch.utils.benchmark's IQR/median rule), stored with the data.
* :func:`median_rel_ci` — distribution-free CI of the median (binomial order statistics), the
  measurement loop's stop rule.
* :func:`compare_samples` — ratio of medians with a bootstrap CI, a Mann-Whitney test for a
  difference and a bootstrap two-one-sided test (TOST) for equivalence within a margin.
* :func:`adjust` — Holm or Benjamini-Hochberg over a whole sweep's p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from .record_types import Summary as RecordSummary

__all__ = [
    "Summary",
    "adjust",
    "by_batch",
    "compare_paired",
    "compare_replicates",
    "compare_samples",
    "detectable_change",
    "median_rel_ci",
    "summarize",
]

Z_95 = 1.96
Z_90_POWER = 1.2816  # one-sided z for 90 % power


def detectable_change(se_log: float) -> float:
    """The smallest relative change a measurement with this standard error of the log ratio
    detects with 90 % power at α = 0.05 (two-sided)."""
    return math.expm1((Z_95 + Z_90_POWER) * se_log)


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
        """The record's ``summary`` part (:class:`harness.record_types.Summary`)."""
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


_STATISTICS: dict[str, Any] = {
    "p50": lambda m: np.median(m, axis=1),
    "p90": lambda m: np.percentile(m, 90, axis=1),
    "mean": lambda m: np.mean(m, axis=1),
}


@dataclass(frozen=True, slots=True)
class SampleComparison:
    """B against A, as ratios (B/A) of medians: > 1 means B takes longer / is larger."""

    ratio: float
    ci_low: float
    ci_high: float
    p_diff: float
    p_equiv: float
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_samples(
    a: Sequence[float],
    b: Sequence[float],
    *,
    margin: float = 0.02,
    confidence: float = 0.95,
    n_boot: int = 4000,
    seed: int = 0,
    statistic: str = "p50",
) -> SampleComparison:
    """Ratio of medians median(b)/median(a) with a percentile-bootstrap CI.

    ``statistic`` picks what is compared: ``p50`` (default), ``p90``, or ``mean`` (the
    reciprocal of throughput, since throughput is total work over total time).

    ``p_diff``: two-sided Mann-Whitney U (asv's test) — is there any difference at all.
    ``p_equiv``: bootstrap TOST on the log ratio against ``±log(1 + margin)``; small means
    the ratio is inside ``[1/(1+margin), 1+margin]`` with confidence. The bootstrap uses a
    fixed seed so the same samples always give the same verdict.
    """
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.size < 2 or xb.size < 2:
        raise ValueError("need at least 2 samples on each side")
    stat = _STATISTICS[statistic]
    rng = np.random.default_rng(seed)
    ma = stat(xa[rng.integers(0, xa.size, (n_boot, xa.size))])
    mb = stat(xb[rng.integers(0, xb.size, (n_boot, xb.size))])
    log_ratio = np.log(mb) - np.log(ma)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(log_ratio, [tail, 1 - tail])
    bound = math.log1p(margin)
    # One-sided bootstrap p-values for "ratio >= 1+margin" and "ratio <= 1/(1+margin)".
    p_upper = (np.count_nonzero(log_ratio >= bound) + 1) / (n_boot + 1)
    p_lower = (np.count_nonzero(log_ratio <= -bound) + 1) / (n_boot + 1)
    if np.ptp(xa) == 0 and np.ptp(xb) == 0 and xa[0] == xb[0]:
        p_diff = 1.0  # identical constants: mannwhitneyu's normal approximation is undefined
    else:
        p_diff = float(sps.mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
    return SampleComparison(
        ratio=float(stat(xb[None, :])[0] / stat(xa[None, :])[0]),
        ci_low=float(math.exp(lo)),
        ci_high=float(math.exp(hi)),
        p_diff=p_diff,
        p_equiv=float(max(p_upper, p_lower)),
        n_a=int(xa.size),
        n_b=int(xb.size),
    )


def compare_replicates(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
) -> SampleComparison:
    """B against A when each value is one *run* (a process) rather than one call.

    Calls inside a run share that run's machine state, so when runs differ (they do on a
    shared VM) the run, not the call, is the unit of replication (pyperf's reasoning for
    many worker processes). Welch's t-test on log values; the ratio is of geometric means,
    with a Welch-t confidence interval.
    """
    la, lb = np.log(np.asarray(a, dtype=float)), np.log(np.asarray(b, dtype=float))
    if la.size < 2 or lb.size < 2:
        raise ValueError("need at least 2 runs on each side")
    diff = float(lb.mean() - la.mean())
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    se = math.sqrt(va + vb)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        lo = hi = diff
    else:
        df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
        t = float(sps.t.ppf(1 - (1 - confidence) / 2, df))
        lo, hi = diff - t * se, diff + t * se
        p = float(2 * sps.t.sf(abs(diff) / se, df))
    return SampleComparison(
        ratio=math.exp(diff),
        ci_low=math.exp(lo),
        ci_high=math.exp(hi),
        p_diff=p,
        p_equiv=1.0,
        n_a=int(la.size),
        n_b=int(lb.size),
    )


def compare_paired(a: Sequence[float], b: Sequence[float]) -> SampleComparison:
    """B against A when ``a[i]`` and ``b[i]`` were measured as a pair (neighbouring runs of an
    ABBA sequence): the mean of per-pair log ratios with a one-sample t interval (95 %)."""
    d = np.log(np.asarray(b, dtype=float)) - np.log(np.asarray(a, dtype=float))
    n = d.size
    if n < 2:
        raise ValueError("need at least 2 pairs")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    if se == 0:
        lo = hi = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        t = float(sps.t.ppf(0.975, n - 1))
        lo, hi = mean - t * se, mean + t * se
        p = float(2 * sps.t.sf(abs(mean) / se, n - 1))
    return SampleComparison(
        ratio=math.exp(mean),
        ci_low=math.exp(lo),
        ci_high=math.exp(hi),
        p_diff=p,
        p_equiv=1.0,
        n_a=n,
        n_b=n,
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
