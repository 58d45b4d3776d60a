"""Where the noise is: statistics whose replicate is the process (or the run), not the call.

On a shared machine most variance sits between processes and between minutes, not between
consecutive calls, and calls within a run are autocorrelated. Treating calls as independent
gives intervals that are too narrow (an A/A that "finds" differences) and a stop rule that
ends in quiet stretches (Kalibera & Jones, *Rigorous Benchmarking in Reasonable Time*, 2013).
Worse, a process can favour one arm over another by a percent or two (where its code and
memory happen to land): that does not cancel within the process, so only more processes
shrink it. So, for arms interleaved in several fresh processes (:func:`process_paired`):

* **Paired by round, stratified by batch.** Within a round every arm runs one block of
  calls; the round's effect is the log ratio of the candidate's to the baseline's block
  medians, taken per batch shape and averaged (a real-text case cycles over batches of
  different shapes; their calls are never pooled into one median). A median per block means
  one hiccup does not move a round.
* **One number per process.** The median of a process's round effects: whatever the process
  did within itself — drift, autocorrelated calls, a slow stretch, two bad rounds of five —
  stays inside that number. A process that ran far off the others' speed (a neighbour took
  the machine) is left out first (:func:`disturbed`), judged on speed, not on the effect.
* **A t interval over processes** (P − 1 degrees of freedom): the effect is the mean of the
  per-process numbers, its standard error their spread over √P. It covers the
  process × arm interaction, because that is exactly what the per-process numbers vary by.
  P-values come from the same t distribution, so they are continuous (no resampling floor)
  and never contradict the interval.

Two separate runs cannot be paired (:func:`stratified_ratio`): their calls are resampled
within each batch, which measures call noise only; the estimate says so (``replicates`` 0).

Everything here is pure arithmetic on arrays: no I/O, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

from harness.stats.summary import by_batch

__all__ = [
    "CALL_DTYPE",
    "DISTURBED",
    "Estimate",
    "VariancePrior",
    "block_medians",
    "calls_table",
    "disturbed",
    "paired_runs_ratio",
    "process_effects",
    "process_means",
    "process_paired",
    "replicate_ratio",
    "run_variance",
    "stratified_ratio",
    "suite_estimate",
    "suite_paired",
    "variance_prior",
]

#: One timed call of one arm: which process and round it ran in, which batch, how long.
CALL_DTYPE = np.dtype([("process", "i4"), ("round", "i4"), ("batch", "i4"), ("seconds", "f8")])


@dataclass(frozen=True, slots=True)
class Estimate:
    """Candidate against baseline on the log scale, with everything a verdict needs.

    ``ratio`` > 1 means the candidate takes longer. The intervals and p-values come from a t
    distribution with ``df`` degrees of freedom (``inf``: a normal approximation) around
    ``log(ratio)`` with standard error ``se_log``. ``replicates`` is what the interval is over:
    processes (paired), runs, or 0 when calls are the replicate and between-run variation is
    not in the interval.
    """

    ratio: float
    se_log: float
    df: float
    level: str
    n_a: int
    n_b: int
    replicates: int = 0
    var_between: float | None = None
    var_within: float | None = None
    #: The processes the estimate is over (paired estimates only).
    processes: tuple[int, ...] = ()

    @property
    def log_ratio(self) -> float:
        return math.log(self.ratio)

    def quantile(self, q: float) -> float:
        return float(sps.t.ppf(q, self.df)) if math.isfinite(self.df) else float(sps.norm.ppf(q))

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        half = self.quantile(0.5 + confidence / 2) * self.se_log
        return math.exp(self.log_ratio - half), math.exp(self.log_ratio + half)

    @property
    def ci_low(self) -> float:
        return self.interval(0.95)[0]

    @property
    def ci_high(self) -> float:
        return self.interval(0.95)[1]

    @property
    def ci90_low(self) -> float:
        return self.interval(0.90)[0]

    @property
    def ci90_high(self) -> float:
        return self.interval(0.90)[1]

    def _sf(self, x: float) -> float:
        return float(sps.t.sf(x, self.df)) if math.isfinite(self.df) else float(sps.norm.sf(x))

    @property
    def p_diff(self) -> float:
        """Two-sided p-value for "no change"; < α exactly when the (1 − α) interval excludes 1."""
        if self.se_log == 0:
            return 1.0 if self.log_ratio == 0 else 0.0
        return min(1.0, 2 * self._sf(abs(self.log_ratio) / self.se_log))

    def p_equiv(self, margin: float) -> float:
        """Two one-sided tests (TOST) for |log ratio| < log(1 + margin); < α exactly when the
        (1 − 2α) interval lies inside ±margin."""
        bound = math.log1p(margin)
        if self.se_log == 0:
            return 0.0 if abs(self.log_ratio) < bound else 1.0
        upper = self._sf((bound - self.log_ratio) / self.se_log)
        lower = self._sf((self.log_ratio + bound) / self.se_log)
        return max(upper, lower)

    @property
    def shown_margin(self) -> float:
        """The tightest ±margin within which the 90 % interval lies (what equivalence could
        be claimed at α = 0.05)."""
        return self.margin_shown(0.90)

    def margin_shown(self, confidence: float) -> float:
        """The tightest ±margin within which the ``confidence`` interval lies (TOST at
        α = (1 − confidence) / 2 could claim equivalence within it)."""
        lo, hi = self.interval(confidence)
        return math.expm1(max(abs(math.log(lo)), abs(math.log(hi))))

    def power(self, effect: float, alpha: float, min_effect: float) -> float:
        """Chance that a true relative slowdown ``effect`` would be called "slower" by this
        measurement under the decision rule: two-sided test at ``alpha`` *and* the point
        estimate at least ``min_effect`` (the noise taken as measured here)."""
        if self.se_log == 0:
            return 1.0 if effect >= min_effect else 0.0
        crit = max(self.quantile(1 - alpha / 2) * self.se_log, math.log1p(min_effect))
        return self._sf((crit - math.log1p(effect)) / self.se_log)

    def detectable(self, alpha: float, min_effect: float, power: float = 0.9) -> float:
        """The smallest relative slowdown called "slower" with ``power`` under the decision
        rule of :meth:`power` (the inverse of it)."""
        crit = max(self.quantile(1 - alpha / 2) * self.se_log, math.log1p(min_effect))
        return math.expm1(crit + self.quantile(power) * self.se_log)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        lo, hi = self.interval(0.95)
        lo90, hi90 = self.interval(0.90)
        out |= {"ci_low": lo, "ci_high": hi, "ci90_low": lo90, "ci90_high": hi90}
        out |= {"p_diff": self.p_diff, "shown_margin": self.shown_margin}
        if not math.isfinite(self.df):
            out["df"] = None
        return out


def calls_table(
    samples: Sequence[float], *, process: int, block: int, n_batches: int = 1
) -> np.ndarray:
    """An interleaved record's timed calls as rows of :data:`CALL_DTYPE`: timed call *k* ran
    in round ``k // block`` on batch ``k % n_batches``."""
    x = np.asarray(samples, float)
    k = np.arange(x.size)
    out = np.empty(x.size, CALL_DTYPE)
    out["process"], out["round"] = process, k // max(1, block)
    out["batch"], out["seconds"] = k % max(1, n_batches), x
    return out


def block_medians(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique (process, round, batch) rows of ``t`` and the median seconds of each."""
    keys = np.stack([t["process"], t["round"], t["batch"]], axis=1).astype(np.int64)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    groups = np.split(t["seconds"][order], np.cumsum(np.bincount(inverse))[:-1])
    return uniq, np.array([np.median(g) for g in groups])


def process_effects(a: np.ndarray, b: np.ndarray) -> dict[int, np.ndarray]:
    """Per process (shared by both arms), the effects of the rounds both arms completed:
    per-batch log ratios of block medians, averaged over the batches both ran."""
    if not a.size or not b.size:
        return {}
    ka, ma = block_medians(a)
    kb, mb = block_medians(b)
    index_b = {tuple(k): i for i, k in enumerate(kb.tolist())}
    by_round: dict[tuple[int, int], list[float]] = {}
    for i, key in enumerate(ka.tolist()):
        j = index_b.get(tuple(key))
        if j is not None:
            by_round.setdefault((key[0], key[1]), []).append(math.log(mb[j]) - math.log(ma[i]))
    out: dict[int, list[float]] = {}
    for (p, _r), logs in sorted(by_round.items()):
        out.setdefault(p, []).append(float(np.mean(logs)))
    return {p: np.asarray(v) for p, v in out.items()}


def _summary(rounds: np.ndarray) -> float:
    return float(np.median(rounds))


#: A process that ran more than this much faster or slower than the median process (the
#: mean speed of both arms, so not the effect) ran on a disturbed machine.
DISTURBED = 0.25


def disturbed(levels: Mapping[int, float], tolerance: float = DISTURBED) -> list[int]:
    """The processes whose log speed ``levels`` is more than ``tolerance`` off the median
    process's. Screened on speed, which both arms share, never on the effect: a process
    that a neighbour slowed 2-5x (seen on the shared VM: one of ten processes at 2.8x and
    +126 % on an A/A pair) would otherwise decide a verdict alone. On a quiet machine
    processes differ by a few percent and none is screened. Only a minority is ever left out
    (at most ``(n - 1) // 2``, which from four processes up leaves three or more) and with
    three nothing is screened: an estimate over two has one degree of freedom (t = 12.7 at
    95 %) and decides nothing (seen: a 1.4x process of three screened left a deeper twin,
    1.3x, "inconclusive"), and the pairing copes alone. When most processes are off the median,
    the machine's speed swung for all of them (seen: ten processes at 0.6-4x the median while
    other jobs ran), there is no usual speed to screen against, and the pairing itself is what
    copes with it."""
    if len(levels) < 4:
        return []
    med = float(np.median(list(levels.values())))
    off = sorted(p for p, v in levels.items() if abs(v - med) > math.log1p(tolerance))
    return off if len(off) <= (len(levels) - 1) // 2 else []


def process_means(per_process: Mapping[int, np.ndarray]) -> dict[int, float]:
    """Each process's one number: the median of its round effects."""
    return {p: _summary(np.asarray(v, float)) for p, v in per_process.items() if len(v)}


def process_paired(per_process: Mapping[int, np.ndarray] | Sequence[np.ndarray]) -> Estimate:
    """The effect from per-round effects, one array per process (see the module docstring).

    Needs two processes or more: with one, the process × arm variation is unmeasured and no
    honest interval exists (:class:`ValueError`)."""
    items = (
        list(per_process.items())
        if isinstance(per_process, Mapping)
        else list(enumerate(per_process))
    )
    procs = [(p, np.asarray(v, float)) for p, v in items if len(v)]
    if len(procs) < 2:
        raise ValueError("a paired estimate needs rounds from at least two processes")
    means = np.array([_summary(v) for _, v in procs])
    n_p = means.size
    var_means = float(means.var(ddof=1))
    # The variance a median of R rounds has, roughly: pi/2 times a mean's.
    within = [math.pi / 2 * v.var(ddof=1) / v.size for _, v in procs if v.size > 1]
    var_within = float(np.mean(within)) if within else 0.0
    rounds = sum(v.size for _, v in procs)
    return Estimate(
        ratio=math.exp(float(means.mean())),
        se_log=math.sqrt(var_means / n_p),
        df=float(n_p - 1),
        level=f"paired rounds, t over {n_p} processes ({rounds} rounds)",
        n_a=rounds,
        n_b=rounds,
        replicates=n_p,
        var_between=max(0.0, var_means - var_within),
        var_within=var_within,
        processes=tuple(int(p) for p, _ in procs),
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
    drift violates, so the interval covers call noise only (``replicates`` 0); the standard
    error is the bootstrap's, the interval and p-value normal around the point estimate.
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
    boot = boot[np.isfinite(boot)]
    return Estimate(
        ratio=math.exp(point),
        se_log=float(boot.std(ddof=1)) if boot.size > 1 else 0.0,
        df=math.inf,
        level=f"calls (stratified by {k} batch; no run-to-run variation)",
        n_a=int(xa.size),
        n_b=int(xb.size),
    )


@dataclass(frozen=True, slots=True)
class VariancePrior:
    """What a family of cases says about one case's run-to-run variance: ``df`` prior degrees
    of freedom around ``variance``."""

    df: float
    variance: float

    def posterior(self, variance: float, df: float) -> tuple[float, float]:
        """The case's moderated variance and its degrees of freedom."""
        return (self.df * self.variance + df * variance) / (self.df + df), self.df + df


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (Smyth's Newton iteration)."""
    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


#: Fewer cases than this say too little about their common variance to lean on it.
MIN_CASES_TO_MODERATE = 10


def variance_prior(variances: Sequence[float], dfs: Sequence[float]) -> VariancePrior | None:
    """Empirical-Bayes prior for many cases' variances, each on few degrees of freedom
    (Smyth 2004, the moderated t of limma): a scaled inverse-chi-square fitted to the
    observed variances by moments of their logs. Pooling is as strong as the cases agree:
    when their variances spread no more than sampling explains, they share one (the prior
    then has all the cases' degrees of freedom, limma's cap); when they differ, the prior is
    weak and each case keeps its own. None with fewer than
    :data:`MIN_CASES_TO_MODERATE` usable cases."""
    pairs = [(v, d) for v, d in zip(variances, dfs, strict=True) if v > 0 and d > 0]
    if len(pairs) < MIN_CASES_TO_MODERATE:
        return None
    v = np.array([p[0] for p in pairs])
    d = np.array([p[1] for p in pairs])
    pooled_df = float(d.sum())
    e = np.log(v) - special.digamma(d / 2) + np.log(d / 2)
    spread = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    if spread <= 0:  # the cases agree: one variance, on all their degrees of freedom
        return VariancePrior(pooled_df, float((d * v).sum() / pooled_df))
    d0 = min(2 * _trigamma_inverse(spread), pooled_df)
    return VariancePrior(d0, float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2))))


def run_variance(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(log ratio of geometric means, pooled variance of log run values, its degrees of
    freedom) for runs of two sides; pooled over both sides, which ran on the same machine."""
    la, lb = np.log(np.asarray(a, float)), np.log(np.asarray(b, float))
    if la.size + lb.size < 3 or min(la.size, lb.size) < 1:
        raise ValueError("need three runs in all, at least one on each side")
    ss = float(((la - la.mean()) ** 2).sum() + ((lb - lb.mean()) ** 2).sum())
    df = float(la.size + lb.size - 2)
    return float(lb.mean() - la.mean()), ss / df, df


def replicate_ratio(
    a: Sequence[float], b: Sequence[float], prior: VariancePrior | None = None
) -> Estimate:
    """B against A when each value is one *run* (a process) rather than one call: the ratio
    of geometric means, with a t interval on the log values.

    Calls inside a run share that run's machine state, so when runs differ (they do on a
    shared VM) the run is the unit of replication (pyperf's many worker processes). The
    run-to-run variance is pooled over both sides (one run on one side works: a stored
    baseline of repeats against one new run), and with a ``prior`` from the other cases of
    the suite (:func:`variance_prior`) it is moderated: few runs per case borrow degrees of
    freedom from the rest."""
    diff, variance, df = run_variance(a, b)
    level = f"runs {len(a)}/{len(b)}"
    if prior is not None:
        variance, df = prior.posterior(variance, df)
        level += f", variance moderated over the suite ({df:.0f} df)"
    return Estimate(
        ratio=math.exp(diff),
        se_log=math.sqrt(variance * (1 / len(a) + 1 / len(b))),
        df=df,
        level=level,
        n_a=len(a),
        n_b=len(b),
        replicates=len(a) + len(b),
    )


def paired_runs_ratio(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """B against A when ``a[i]`` and ``b[i]`` were measured as a pair (neighbouring runs of an
    ABBA sequence): the mean of per-pair log ratios with a one-sample t interval."""
    d = np.log(np.asarray(b, float)) - np.log(np.asarray(a, float))
    if d.size < 2:
        raise ValueError("need at least 2 pairs")
    return Estimate(
        ratio=math.exp(float(d.mean())),
        se_log=float(d.std(ddof=1) / math.sqrt(d.size)),
        df=float(d.size - 1),
        level=f"paired runs ({d.size} pairs)",
        n_a=int(d.size),
        n_b=int(d.size),
        replicates=int(d.size),
    )


def suite_paired(per_case: Sequence[Mapping[int, float]]) -> Estimate | None:
    """The suite's effect when its cases were interleaved in the same processes: per
    process, the mean of that process's effect over the cases (an arm is prepared once per
    process, so the process's leaning is shared by its cases and does not average out over
    them), then a t interval over the processes every case has."""
    shared = set.intersection(*(set(c) for c in per_case)) if per_case else set()
    if len(shared) < 2:
        return None
    means = np.array([np.mean([c[p] for c in per_case]) for p in sorted(shared)])
    return Estimate(
        ratio=math.exp(float(means.mean())),
        se_log=float(means.std(ddof=1) / math.sqrt(means.size)),
        df=float(means.size - 1),
        level=f"suite ({len(per_case)} cases), t over {means.size} processes",
        n_a=len(per_case),
        n_b=len(per_case),
        replicates=int(means.size),
    )


def suite_estimate(estimates: Sequence[Estimate]) -> Estimate | None:
    """The geometric mean of case ratios, with a normal interval from the cases' standard
    errors treated as independent — true of separate runs' cases only; interleaved cases
    share their processes (:func:`suite_paired`)."""
    ok = [e for e in estimates if e.ratio > 0 and math.isfinite(e.se_log)]
    if not ok:
        return None
    logs = np.log([e.ratio for e in ok])
    se = math.sqrt(sum(e.se_log**2 for e in ok)) / len(ok)
    return Estimate(
        ratio=math.exp(float(logs.mean())),
        se_log=se,
        df=math.inf,
        level=f"suite ({len(ok)} cases)",
        n_a=len(ok),
        n_b=len(ok),
    )
