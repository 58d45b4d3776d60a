"""The estimators of :mod:`harness.stats.hierarchy`: what each replicate gives, where each fails.

The scoring on the shared noise simulator is in ``test_calibration.py``; here are the
properties that can be checked exactly, and the failures of the designs this replaced."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.comparison.decide import CompareSettings, verdict_of
from harness.stats.hierarchy import (
    CALL_DTYPE,
    Estimate,
    calls_table,
    paired_runs_ratio,
    process_effects,
    process_paired,
    replicate_ratio,
    run_variance,
    stratified_ratio,
    variance_prior,
)

COST = np.array([0.004, 0.011, 0.027, 0.052])  # four real-text batch shapes, seconds


def _arm(rng: np.random.Generator, scale: float, processes: int, offsets: np.ndarray) -> np.ndarray:
    tables = []
    for p in range(processes):
        n = 6 * 8
        x = COST[np.arange(n) % 4] * scale * math.exp(offsets[p])
        tables.append(
            calls_table(x * np.exp(0.03 * rng.standard_normal(n)), process=p, block=8, n_batches=4)
        )
    return np.concatenate(tables)


def test_calls_table_follows_the_record_layout() -> None:
    t = calls_table([1.0, 2.0, 3.0, 4.0, 5.0], process=3, block=2, n_batches=2)
    assert t.dtype == CALL_DTYPE
    assert list(t["round"]) == [0, 0, 1, 1, 2] and list(t["batch"]) == [0, 1, 0, 1, 0]
    assert set(t["process"]) == {3}


def test_a_hiccup_does_not_move_a_round() -> None:
    """Block medians per batch: one call 5x slower leaves its round's effect unchanged."""
    a = calls_table([1.0] * 12, process=0, block=6, n_batches=2)
    b = calls_table([1.1] * 12, process=0, block=6, n_batches=2)
    hit = b.copy()
    hit["seconds"][3] = 5.5
    assert process_effects(a, b)[0] == pytest.approx(process_effects(a, hit)[0])


def test_rounds_one_arm_lacks_are_left_out() -> None:
    a = calls_table([1.0] * 9, process=0, block=3)
    b = calls_table([1.2] * 6, process=0, block=3)  # its last round never ran
    assert process_effects(a, b)[0].size == 2


def test_process_paired_is_a_t_interval_over_processes() -> None:
    effects = {p: np.full(4, v) for p, v in enumerate([0.01, 0.03, 0.02, 0.04, 0.00])}
    est = process_paired(effects)
    means = np.array([0.01, 0.03, 0.02, 0.04, 0.00])
    se = means.std(ddof=1) / math.sqrt(5)
    assert est.df == 4 and est.replicates == 5
    assert math.log(est.ratio) == pytest.approx(means.mean())
    assert est.se_log == pytest.approx(se)
    lo, hi = est.interval(0.95)
    half = sps.t.ppf(0.975, 4) * se
    assert math.log(lo) == pytest.approx(means.mean() - half)
    assert math.log(hi) == pytest.approx(means.mean() + half)
    # the p-value is the same t distribution's: < 0.05 exactly when the interval excludes 1
    assert est.p_diff == pytest.approx(2 * sps.t.sf(means.mean() / se, 4))


def test_one_process_gives_no_interval() -> None:
    with pytest.raises(ValueError, match="two processes"):
        process_paired({0: np.array([0.01, 0.02])})


def test_between_process_variance_is_the_component_not_the_variance_of_means() -> None:
    rng = np.random.default_rng(5)
    # rounds vary by 4 %, processes not at all: the between component must come out ~0,
    # while the variance of the process means is all within-process noise
    between, within, of_means = [], [], []
    for _ in range(200):
        effects = {p: 0.04 * rng.standard_normal(50) for p in range(8)}
        est = process_paired(effects)
        assert est.var_between is not None and est.var_within is not None
        between.append(est.var_between)
        within.append(est.var_within)
        of_means.append(np.var([np.median(v) for v in effects.values()], ddof=1))
    assert np.mean(within) == pytest.approx(math.pi / 2 * 0.04**2 / 50, rel=0.05)
    assert np.mean(of_means) == pytest.approx(np.mean(within), rel=0.2)
    assert np.mean(between) < 0.4 * np.mean(within)  # clipped at 0, so not quite 0
    # processes that differ by 2 % (σ): the component is that, not the variance of means
    found = []
    for _ in range(200):
        effects = {
            p: 0.02 * rng.standard_normal() + 0.04 * rng.standard_normal(50) for p in range(8)
        }
        found.append(process_paired(effects).var_between)
    assert np.mean(found) == pytest.approx(0.02**2, rel=0.25)


def test_process_by_arm_interaction_is_covered_and_round_pooling_is_not() -> None:
    """Each process favours each arm by its own 1.9 % (σ, seen between real processes). A t
    over processes covers the truth; treating rounds of all processes as the replicate (the
    replaced bootstrap at one process collapsed to that) does not."""
    rng = np.random.default_rng(11)
    covered_t = covered_rounds = 0
    trials = 300
    for _ in range(trials):
        p = 10
        a = _arm(rng, 1.0, p, 0.019 * rng.standard_normal(p))
        b = _arm(rng, 1.0, p, 0.019 * rng.standard_normal(p))
        effects = process_effects(a, b)
        lo, hi = process_paired(effects).interval(0.95)
        covered_t += lo < 1 < hi
        rounds = np.concatenate(list(effects.values()))
        half = 1.96 * rounds.std(ddof=1) / math.sqrt(rounds.size)
        covered_rounds += abs(rounds.mean()) < half
    assert covered_t / trials >= 0.93
    assert covered_rounds / trials < 0.8


def test_equivalence_and_power_follow_the_decision_rule() -> None:
    est = Estimate(ratio=1.01, se_log=0.01, df=9.0, level="", n_a=1, n_b=1, replicates=10)
    # TOST at 5 % ⇔ the 90 % interval inside ±margin
    lo90, hi90 = est.interval(0.90)
    for margin in (0.02, 0.03, 0.04, 0.05):
        inside = 1 / (1 + margin) < lo90 and hi90 < 1 + margin
        assert (est.p_equiv(margin) < 0.05) == inside
    # the detectable change is what the rule would call "slower" with 90 % power
    mde = est.detectable(0.05, 0.03)
    assert est.power(mde, 0.05, 0.03) == pytest.approx(0.9)
    # at a true effect equal to the minimum effect the rule's power is about one half
    assert 0.3 < est.power(0.03, 0.05, 0.03) < 0.6
    # a simulation of the rule agrees with the formula
    rng = np.random.default_rng(1)
    crit_t = sps.t.ppf(0.975, 9)
    hits = 0
    for _ in range(4000):
        point = math.log1p(mde) + 0.01 * rng.standard_t(9)
        hits += point / 0.01 > crit_t and point >= math.log1p(0.03)
    assert hits / 4000 == pytest.approx(0.9, abs=0.02)


def _verdict(ratio: float, se: float, df: float = 9.0, p: float | None = None) -> str:
    est = Estimate(ratio=ratio, se_log=se, df=df, level="", n_a=1, n_b=1, replicates=10)
    return verdict_of(est, est.p_diff if p is None else p, CompareSettings())[0]


def test_verdicts_agree_with_their_intervals() -> None:
    assert _verdict(1.08, 0.01) == "slower"
    assert _verdict(0.92, 0.01) == "faster"
    assert _verdict(1.004, 0.004) == "equivalent"
    assert _verdict(1.01, 0.04) == "inconclusive"
    # significant, the point under min_effect, the interval wholly within ±3 %: negligible
    assert _verdict(1.015, 0.004) == "negligible"
    # significant, point under min_effect, interval reaching past it: not negligible
    assert _verdict(1.02, 0.008) == "inconclusive"
    # beyond min_effect but not significant after adjustment
    assert _verdict(1.08, 0.01, p=0.2) == "inconclusive"


def test_margin_above_min_effect_is_refused() -> None:
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="must not exceed min_effect"):
        CompareSettings(margin=0.05, min_effect=0.03)


def test_separate_runs_stratified_by_batch() -> None:
    """Four batches of very different cost, no change: resampling within each batch gives a
    tight interval; pooling the calls of all batches does not."""
    rng = np.random.default_rng(0)

    def calls(n: int) -> list[float]:
        return list(COST[np.arange(n) % 4] * np.exp(0.03 * rng.standard_normal(n)))

    a, b = calls(40), calls(40)
    strat = stratified_ratio(a, b, n_batches=4)
    pooled = stratified_ratio(a, b, n_batches=1)
    assert strat.replicates == 0 and "no run-to-run" in strat.level
    assert (strat.ci_high / strat.ci_low) ** 0.5 - 1 < 0.03
    assert (pooled.ci_high / pooled.ci_low) ** 0.5 - 1 > 0.15
    assert 0 < strat.p_diff <= 1


def test_runs_as_replicates() -> None:
    c = replicate_ratio([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert c.ratio == pytest.approx(2.0, rel=0.01) and c.ci_low > 1.5 and c.p_diff < 0.01
    same = replicate_ratio([1.0, 1.2, 0.8], [1.1, 0.9, 1.0])
    assert same.ci_low < 1 < same.ci_high and same.p_diff > 0.5
    # one new run against a repeated baseline: the baseline's spread stands for both
    one = replicate_ratio([1.0, 1.02, 0.98, 1.01], [1.2])
    assert one.df == 3 and one.ci_low > 1.05
    with pytest.raises(ValueError, match="three runs"):
        replicate_ratio([1.0], [1.0])


def test_paired_runs() -> None:
    c = paired_runs_ratio([1.0, 1.2, 0.9, 1.1], [1.05, 1.26, 0.945, 1.155])
    assert c.ratio == pytest.approx(1.05) and c.se_log == pytest.approx(0.0, abs=1e-12)
    assert c.p_diff == pytest.approx(0.0, abs=1e-12)


def test_variance_prior_pools_as_far_as_the_cases_agree() -> None:
    rng = np.random.default_rng(2)
    # 40 cases with one true variance, 2 df each: the prior is (nearly) complete pooling
    same = [0.03**2 * rng.chisquare(2) / 2 for _ in range(40)]
    prior = variance_prior(same, [2] * 40)
    assert prior is not None and prior.df > 20
    assert prior.variance == pytest.approx(0.03**2, rel=0.35)
    var, df = prior.posterior(same[0], 2)
    assert df > 22 and var == pytest.approx(0.03**2, rel=0.4)
    # cases whose variances differ 100-fold: a weak prior, each case keeps most of its own
    mixed = [(0.01 if i % 2 else 0.1) ** 2 * rng.chisquare(8) / 8 for i in range(40)]
    weak = variance_prior(mixed, [8] * 40)
    assert weak is not None and weak.df < 3
    assert variance_prior([1.0, 2.0], [2, 2]) is None


def test_moderation_keeps_coverage_for_a_suite_of_few_runs() -> None:
    """Three runs a side per case, 24 cases with one run-to-run σ (3 %): the moderated
    interval covers as it should while being much narrower than each case's own t."""
    rng = np.random.default_rng(8)
    covered, widths_own, widths_mod = 0, [], []
    trials = 60
    for _ in range(trials):
        cases = [(np.exp(0.03 * rng.standard_normal(3)), np.exp(0.03 * rng.standard_normal(3)))
                 for _ in range(24)]  # fmt: skip
        fits = [run_variance(a, b) for a, b in cases]
        prior = variance_prior([f[1] for f in fits], [f[2] for f in fits])
        for a, b in cases:
            est = replicate_ratio(a, b, prior)
            covered += est.ci_low < 1 < est.ci_high
            widths_mod.append(est.ci_high / est.ci_low)
            widths_own.append(replicate_ratio(a, b).ci_high / replicate_ratio(a, b).ci_low)
    assert covered / (trials * 24) >= 0.93
    assert np.median(widths_mod) < np.median(widths_own)


def test_the_suite_interval_covers_when_cases_share_their_processes() -> None:
    """An arm is prepared once per process and serves all its cases: a process's leaning is
    common to them. Treating cases as independent covered the truth 58 % of the time here."""
    from harness.stats.hierarchy import suite_estimate, suite_paired

    rng = np.random.default_rng(12)
    covered_paired = covered_indep = 0
    trials = 200
    for _ in range(trials):
        lean = 0.01 * rng.standard_normal(10)  # per process, shared by its cases
        per_case, estimates = [], []
        for _case in range(10):
            effects = {p: lean[p] + 0.02 * rng.standard_normal(5) for p in range(10)}
            per_case.append({p: float(v.mean()) for p, v in effects.items()})
            estimates.append(process_paired(effects))
        paired = suite_paired(per_case)
        indep = suite_estimate(estimates)
        assert paired is not None and indep is not None
        covered_paired += paired.ci_low < 1 < paired.ci_high
        covered_indep += indep.ci_low < 1 < indep.ci_high
    assert covered_paired / trials >= 0.92
    assert covered_indep / trials < 0.8


def test_a_disturbed_process_is_screened_on_speed_not_effect() -> None:
    from harness.stats.hierarchy import disturbed

    levels = {p: math.log(0.010 * (1 + 0.02 * (p % 3))) for p in range(10)}
    assert disturbed(levels) == []
    levels[6] = math.log(0.025)  # a neighbour slowed process 6 2.5x
    levels[2] = math.log(0.0075)  # and process 2 ran 25+ % fast
    assert disturbed(levels) == [2, 6]
    assert disturbed({0: 0.0, 1: 5.0}) == []  # too few to tell
    # Speeds recorded in a gate trial while other jobs loaded the VM: every process more than
    # 25 % off the median one. No usual speed to screen against: none is left out (screening
    # all of them once left no process and crashed the estimate).
    swung = [0.62, 1.57, 3.95, 1.58, 1.33, 1.58, 0.61, 0.62, 0.62, 0.75]
    assert disturbed({p: math.log(x) for p, x in enumerate(swung)}) == []
    three = {0: 0.0, 1: math.log(2.0), 2: math.log(0.5)}
    assert disturbed(three) == []  # two of three off: a majority
    # One of three off: left in, since two processes (one degree of freedom) decide nothing.
    assert disturbed({0: 0.0, 1: 0.01, 2: math.log(3.0)}) == []
    assert disturbed({0: 0.0, 1: 0.01, 2: 0.02, 3: math.log(3.0)}) == [3]
