"""Where the noise is: statistics whose replicate is the process and the round, not the call.

On a shared machine most variance sits between processes and between minutes, not between
consecutive calls; calls within a run are autocorrelated. Treating calls as independent gives
intervals that are too narrow (an A/A that "finds" differences) and a stop rule that ends in
quiet stretches (Kalibera & Jones, *Rigorous Benchmarking in Reasonable Time*, 2013). So:

* **Stratified by batch.** A real-text case cycles through batches of different shapes; call
  *k* of a run ran batch ``k % n_batches``. Its latency distribution is a mixture, and a
  median of the pooled calls jumps between clusters. Every statistic here is taken per batch
  and then combined (geometric mean of per-batch ratios; for throughput, the ratio of the
  summed per-batch means — the time of one pass over the workload).
* **Paired by round.** ``harness compare`` times all arms inside one process in rounds, each
  round visiting the arms in a random order. The log ratio of the candidate's to the
  baseline's per-round (per-batch) medians cancels whatever the machine did that minute.
* **Hierarchical bootstrap.** Processes are resampled with replacement, then rounds within
  each resampled process; the interval covers both levels of variation.

Everything here is pure arithmetic on arrays: no I/O, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .stats import by_batch, detectable_change

__all__ = [
    "Estimate",
    "hierarchical_paired",
    "stratified_ratio",
    "suite_estimate",
]


@dataclass(frozen=True, slots=True)
class Estimate:
    """Candidate against baseline on the log scale, with everything a verdict needs.

    ``ratio`` > 1 means the candidate takes longer. ``ci_*`` is the 95 % interval (what
    slower/faster is decided on), ``ci90_*`` the 90 % interval (what equivalence within a
    margin is decided on, as two one-sided tests at 5 %). ``mde`` is the smallest relative
    change this measurement would detect with 90 % power at α = 0.05; ``shown_margin`` the
    tightest ±margin within which it could call the two equivalent.
    """

    ratio: float
    ci_low: float
    ci_high: float
    ci90_low: float
    ci90_high: float
    p_diff: float
    se_log: float
    mde: float
    shown_margin: float
    level: str
    n_a: int
    n_b: int
    var_between: float | None = None
    var_within: float | None = None

    def p_equiv(self, margin: float) -> float:
        """Bootstrap TOST p-value for |log ratio| < log(1 + margin), normal approximation
        on the bootstrap's standard error (consistent with the 90 % interval)."""
        if self.se_log == 0:
            return 0.0 if abs(math.log(self.ratio)) < math.log1p(margin) else 1.0
        bound = math.log1p(margin)
        lr = math.log(self.ratio)
        upper = 1 - _norm_cdf((bound - lr) / self.se_log)
        lower = 1 - _norm_cdf((lr + bound) / self.se_log)
        return float(max(upper, lower))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _from_replicates(
    point: float, boot: np.ndarray, level: str, n_a: int, n_b: int, **extra: float | None
) -> Estimate:
    """An :class:`Estimate` from the point log ratio and its bootstrap replicates."""
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size else (point, point)
    lo90, hi90 = np.quantile(boot, [0.05, 0.95]) if boot.size else (point, point)
    n = boot.size
    if n:
        # Two-sided bootstrap p-value: how often the resampled effect lands on the other
        # side of zero. Consistent with the percentile interval: p < 0.05 ⇔ 0 ∉ 95 % CI.
        below = (np.count_nonzero(boot <= 0) + 1) / (n + 1)
        above = (np.count_nonzero(boot >= 0) + 1) / (n + 1)
        p = float(min(1.0, 2 * min(below, above)))
    else:
        p = 1.0
    se = float(boot.std(ddof=1)) if n > 1 else 0.0
    return Estimate(
        ratio=math.exp(point),
        ci_low=math.exp(float(lo)),
        ci_high=math.exp(float(hi)),
        ci90_low=math.exp(float(lo90)),
        ci90_high=math.exp(float(hi90)),
        p_diff=p,
        se_log=se,
        mde=detectable_change(se),
        shown_margin=math.expm1(max(abs(float(lo90)), abs(float(hi90)))),
        level=level,
        n_a=n_a,
        n_b=n_b,
        var_between=extra.get("var_between"),
        var_within=extra.get("var_within"),
    )


_STAT: dict[str, Callable[[np.ndarray], float]] = {
    "p50": lambda x: float(np.median(x)),
    "p90": lambda x: float(np.percentile(x, 90)),
    "mean": lambda x: float(np.mean(x)),
}


def _combine(stat: str, a: list[float], b: list[float]) -> float:
    """Per-batch statistics → one log ratio. Means add up (one pass over the workload);
    quantiles are combined as the geometric mean of per-batch ratios."""
    if stat == "mean":
        return math.log(sum(b)) - math.log(sum(a))
    return float(np.mean(np.log(b) - np.log(a)))


def stratified_ratio(
    a: Sequence[float],
    b: Sequence[float],
    n_batches: int = 1,
    *,
    statistic: str = "p50",
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """B against A from two sets of calls, resampling calls within each batch stratum.

    For samples that are not paired in time (two separate runs). Call *k* ran batch
    ``k % n_batches``. Calls are treated as exchangeable within a batch, which run-to-run
    drift violates: prefer :func:`hierarchical_paired` when the arms were interleaved.
    """
    xa, xb = np.asarray(a, float), np.asarray(b, float)
    k = max(1, n_batches)
    strata_a, strata_b = by_batch(xa, k), by_batch(xb, k)
    if len(strata_a) != k or len(strata_b) != k:  # a batch without calls: no strata
        strata_a, strata_b = [xa], [xb]
    fn = _STAT[statistic]
    point = _combine(statistic, [fn(s) for s in strata_a], [fn(s) for s in strata_b])
    rng = np.random.default_rng(seed)
    resampled_a = [s[rng.integers(0, s.size, (n_boot, s.size))] for s in strata_a]
    resampled_b = [s[rng.integers(0, s.size, (n_boot, s.size))] for s in strata_b]
    q = {"p50": 50.0, "p90": 90.0}.get(statistic)

    def per_row(m: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.mean(m, axis=1) if q is None else np.percentile(m, q, axis=1)
        return out

    sa = np.stack([per_row(m) for m in resampled_a], axis=1)
    sb = np.stack([per_row(m) for m in resampled_b], axis=1)
    if statistic == "mean":
        boot = np.log(sb.sum(axis=1)) - np.log(sa.sum(axis=1))
    else:
        boot = np.mean(np.log(sb) - np.log(sa), axis=1)
    return _from_replicates(point, boot, f"calls (stratified by {k} batch)", xa.size, xb.size)


def round_log_ratios(
    a: Sequence[float], b: Sequence[float], block: int, n_batches: int = 1
) -> np.ndarray:
    """Per-round paired log ratios of one process: round *r* holds calls
    ``[r*block, (r+1)*block)`` of each arm; within a round, per-batch medians, combined as
    the mean of per-batch log ratios."""
    xa, xb = np.asarray(a, float), np.asarray(b, float)
    rounds = min(xa.size, xb.size) // block
    k = max(1, n_batches)
    out = []
    for r in range(rounds):
        idx = np.arange(r * block, (r + 1) * block)
        logs = []
        for s in range(k):
            sel = idx[idx % k == s]
            if sel.size:
                logs.append(math.log(np.median(xb[sel])) - math.log(np.median(xa[sel])))
        out.append(float(np.mean(logs)))
    return np.asarray(out)


def hierarchical_paired(
    per_process: Sequence[np.ndarray], *, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """The effect from per-round paired log ratios, one array per process.

    Point estimate: the mean over processes of each process's mean round log ratio. Interval:
    resample processes, then rounds within each resampled process (two-level bootstrap). The
    between-process and within-process (round) variances are reported, so a user can see
    which level to add replicates at.
    """
    procs = [np.asarray(p, float) for p in per_process if len(p)]
    if not procs:
        raise ValueError("no rounds")
    rng = np.random.default_rng(seed)
    point = float(np.mean([p.mean() for p in procs]))
    n_p = len(procs)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        chosen = rng.integers(0, n_p, n_p) if n_p > 1 else np.zeros(1, int)
        means = []
        for j in chosen:
            p = procs[j]
            means.append(p[rng.integers(0, p.size, p.size)].mean())
        boot[i] = np.mean(means)
    within = float(np.mean([p.var(ddof=1) for p in procs if p.size > 1])) if procs else 0.0
    between = float(np.var([p.mean() for p in procs], ddof=1)) if n_p > 1 else None
    rounds = sum(p.size for p in procs)
    return _from_replicates(
        point,
        boot,
        f"paired rounds ({n_p} process(es), {rounds} rounds)",
        rounds,
        rounds,
        var_between=between,
        var_within=within,
    )


def suite_estimate(estimates: Sequence[Estimate]) -> Estimate | None:
    """The geometric mean of case ratios, with an interval from the cases' standard errors
    (treated as independent)."""
    ok = [e for e in estimates if e.ratio > 0 and math.isfinite(e.se_log)]
    if not ok:
        return None
    logs = np.log([e.ratio for e in ok])
    point = float(logs.mean())
    se = math.sqrt(sum(e.se_log**2 for e in ok)) / len(ok)
    rng = np.random.default_rng(0)
    boot = point + se * rng.standard_normal(4000)
    return _from_replicates(point, boot, f"suite ({len(ok)} cases)", len(ok), len(ok))
