from __future__ import annotations

import numpy as np

from harness.stats.changepoint import e_divisive


def test_planted_step_is_found() -> None:
    rng = np.random.default_rng(0)
    values = list(10 + 0.1 * rng.standard_normal(15)) + list(11 + 0.1 * rng.standard_normal(15))
    (cp,) = e_divisive(values)
    assert cp.index == 15
    assert cp.p_value < 0.05
    assert abs(cp.change - 0.10) < 0.02


def test_flat_history_has_no_step() -> None:
    rng = np.random.default_rng(1)
    assert e_divisive(list(10 + 0.1 * rng.standard_normal(30))) == []


def test_two_steps() -> None:
    rng = np.random.default_rng(2)
    values = np.concatenate(
        [
            10 + 0.05 * rng.standard_normal(12),
            12 + 0.05 * rng.standard_normal(12),
            9 + 0.05 * rng.standard_normal(12),
        ]
    )
    assert [cp.index for cp in e_divisive(list(values))] == [12, 24]


def test_deterministic() -> None:
    values = [1.0, 1.1, 0.9, 1.0, 1.05, 2.0, 2.1, 1.9, 2.0, 2.05]
    assert e_divisive(values) == e_divisive(values)
