from __future__ import annotations

import math

import pytest

from harness.measure.calibrate import speed_factor, speed_probe

from .fakes import FakeTimer


def test_speed_factor_is_the_geometric_mean_of_both_probes() -> None:
    base = {"matmul_s": 1.0, "python_s": 1.0}
    assert speed_factor(base, {"matmul_s": 2.0, "python_s": 0.5}) == pytest.approx(1.0)
    assert speed_factor(base, {"matmul_s": 1.21, "python_s": 1.0}) == pytest.approx(1.1)
    assert speed_factor(base, {}) is None
    assert speed_factor({}, base) is None


def test_probe_uses_the_given_timer() -> None:
    probe = speed_probe(FakeTimer([0.002]))
    assert probe["matmul_s"] == 0.002 and probe["python_s"] == 0.002
    assert math.isfinite(speed_probe(FakeTimer([0.001, 0.003]))["matmul_s"])
