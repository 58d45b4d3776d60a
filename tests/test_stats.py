from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import adjust, compare_samples, median_rel_ci, summarize


def test_summarize_percentiles_and_warnings() -> None:
    s = summarize([1.0] * 50 + [3.0])
    assert s.n == 51
    assert s.p50 == 1.0
    assert s.max == 3.0
    assert any("outliers" in w for w in s.warnings)


def test_summarize_stable_has_no_warnings() -> None:
    rng = np.random.default_rng(0)
    s = summarize(list(0.01 * (1 + 0.005 * rng.standard_normal(100))))
    assert s.warnings == ()
    assert s.rel_ci < 0.01


def test_summarize_flags_few_samples_and_tiny_medians() -> None:
    s = summarize([5e-5] * 5)
    assert "only 5 samples" in s.warnings
    assert any("0.1 ms" in w for w in s.warnings)


def test_median_rel_ci() -> None:
    assert math.isinf(median_rel_ci([1.0] * 5))
    assert median_rel_ci([1.0] * 50) == 0.0
    x = list(np.linspace(0.9, 1.1, 101))
    ci = median_rel_ci(x)
    # n=101: binomial quantile k=41, so order statistics 41 and 61 (1-based) = 0.98 and 1.02
    assert ci == pytest.approx(0.02)


def _lognormal(seed: int, scale: float, n: int = 200) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(scale * np.exp(0.03 * rng.standard_normal(n)))


def test_ten_percent_shift_is_found() -> None:
    c = compare_samples(_lognormal(1, 1.0), _lognormal(2, 1.10), margin=0.02)
    assert c.ratio == pytest.approx(1.10, rel=0.01)
    assert c.ci_low > 1.05 and c.ci_high < 1.15
    assert c.p_diff < 1e-10
    assert c.p_equiv > 0.5


def test_identical_distributions_are_equivalent() -> None:
    c = compare_samples(_lognormal(3, 1.0), _lognormal(4, 1.0), margin=0.02)
    assert 0.99 < c.ratio < 1.01
    assert c.ci_low > 1 / 1.02 and c.ci_high < 1.02
    assert c.p_equiv < 0.01


def test_equivalence_needs_enough_data() -> None:
    # 5 noisy samples cannot show equivalence within 1 %.
    c = compare_samples(_lognormal(5, 1.0, 5), _lognormal(6, 1.0, 5), margin=0.01)
    assert c.p_equiv > 0.05


def test_bootstrap_is_deterministic() -> None:
    a, b = _lognormal(7, 1.0), _lognormal(8, 1.03)
    assert compare_samples(a, b) == compare_samples(a, b)


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust(p, "none") == p
    assert adjust([], "holm") == []
    with pytest.raises(ValueError, match="unknown"):
        adjust(p, "bonferroni-ish")


def test_adjust_caps_at_one() -> None:
    assert max(adjust([0.5, 0.6, 0.7], "holm")) == 1.0


def test_heterogeneous_batches_are_not_called_unstable() -> None:
    # Three batches of very different sizes, each perfectly stable: no warnings, zero CI.
    values = [0.01, 0.05, 0.2] * 10
    s = summarize(values, n_batches=3)
    assert s.warnings == ()
    assert s.rel_ci == 0.0
    assert summarize(values).warnings != ()  # the raw view would cry wolf


def test_other_statistics() -> None:
    a = _lognormal(9, 1.0)
    b = [x * 1.2 for x in a]
    for statistic in ("p50", "p90", "mean"):
        c = compare_samples(a, b, statistic=statistic)
        assert c.ratio == pytest.approx(1.2), statistic
    with pytest.raises(KeyError):
        compare_samples(a, b, statistic="p42")


def test_compare_replicates_welch_on_logs() -> None:
    from harness.stats import compare_replicates

    c = compare_replicates([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert c.ratio == pytest.approx(2.0)
    assert c.ci_low < 2.0 < c.ci_high and c.p_diff < 0.01
    same = compare_replicates([1.0, 1.2, 0.8], [1.1, 0.9, 1.0])
    assert same.p_diff > 0.3 and same.ci_low < 1 < same.ci_high
    with pytest.raises(ValueError, match="2 runs"):
        compare_replicates([1.0], [1.0, 2.0])
