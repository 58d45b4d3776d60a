from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats.summary import adjust, median_rel_ci, summarize


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
