"""Capacity search over a probe whose answer is known, and bracket comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.serving.capacity import Capacity, compare_brackets, find_capacity
from harness.serving.queueing import md1_capacity, md1_latency_cdf


@pytest.mark.parametrize("true", [99.0, 90.0, 61.0, 30.0, 5.0])
def test_the_search_brackets_a_known_capacity(true: float) -> None:
    cap = find_capacity(lambda q: q <= true, upper=100.0, rel_tol=0.05, max_probes=12)
    if true >= 95:
        assert cap.stop == "upper_passed"
        assert cap.qps == pytest.approx(95.0)
        return
    assert cap.stop == "converged"
    assert cap.qps <= true < cap.fail_qps
    assert cap.resolution <= 0.05
    # Near the offline throughput (where real capacities are) the search is short.
    assert len(cap.probes) <= (6 if true >= 50 else 12)


def test_no_passing_load_gives_zero_capacity() -> None:
    cap = find_capacity(lambda q: False, upper=100.0, max_probes=20)
    assert cap.qps == 0.0 and cap.stop == "none_passed"
    assert min(q for q, _ in cap.probes) == pytest.approx(100 / 64)


def test_max_probes_stops_the_search_with_an_honest_bracket() -> None:
    cap = find_capacity(lambda q: q <= 70.0, upper=100.0, rel_tol=0.001, max_probes=4)
    assert cap.stop == "max_probes" and len(cap.probes) == 4
    assert cap.qps <= 70.0 < cap.fail_qps


def test_brackets_decide_only_when_they_cannot_overlap() -> None:
    base = Capacity(100.0, 105.0, (), "converged")
    assert compare_brackets(base, Capacity(90.0, 94.0, (), "converged"))[0] == "fewer"
    assert compare_brackets(base, Capacity(110.0, 115.0, (), "converged"))[0] == "more"
    verdict, ratio, (low, high) = compare_brackets(base, Capacity(102.0, 107.0, (), "converged"))
    assert verdict == "within resolution"
    assert ratio == pytest.approx(1.02)
    assert low == pytest.approx(102 / 105) and high == pytest.approx(1.07)
    assert compare_brackets(base, Capacity(0.0, 1.0, (), "none_passed"))[0] == "no capacity"


def test_a_noise_margin_widens_what_is_not_told_apart() -> None:
    base = Capacity(100.0, 105.0, (), "converged")
    lower = Capacity(90.0, 94.0, (), "converged")  # at most 6 % below
    assert compare_brackets(base, lower, margin=0.0)[0] == "fewer"
    assert compare_brackets(base, lower, margin=0.10)[0] == "within resolution"
    assert compare_brackets(base, Capacity(70.0, 73.0, (), "converged"), margin=0.10)[0] == "fewer"


def _simulated_latency(lam: float, service: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / lam, n)
    wait = np.zeros(n)
    for i in range(1, n):
        wait[i] = max(0.0, wait[i - 1] + service - gaps[i])
    return wait + service


@pytest.mark.parametrize(("lam", "bound"), [(300.0, 0.004), (400.0, 0.010), (420.0, 0.015)])
def test_md1_formula_matches_a_simulated_queue(lam: float, bound: float) -> None:
    latency = _simulated_latency(lam, 0.002, 400_000, seed=1)
    assert md1_latency_cdf(lam, 0.002, bound) == pytest.approx(np.mean(latency <= bound), abs=0.01)


def test_md1_capacity_inverts_the_cdf() -> None:
    lam = md1_capacity(0.002, 0.010, 0.99)
    assert md1_latency_cdf(lam, 0.002, 0.010) == pytest.approx(0.99, abs=1e-6)
    assert md1_capacity(0.002, 0.001) == 0.0  # the bound is below one service time
    assert md1_latency_cdf(600.0, 0.002, 1.0) == 0.0  # unstable queue
    assert math.isclose(md1_latency_cdf(1e-9, 0.002, 0.002), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize(("percentile", "bound"), [(0.9, 0.006), (0.99, 0.010)])
def test_the_capacity_search_finds_the_md1_answer_on_a_simulated_clock(
    percentile: float, bound: float
) -> None:
    """The search as serve-bench runs it, each probe a simulated M/D/1 queue (Poisson
    arrivals, 2 ms service, one at a time) on a simulated clock: exact, fast, the same on a
    busy machine. (Real LoadGen runs against the same formula are a benchmark,
    ``bench/serving/md1.py``: on a loaded 2-core VM their verdict depends on the machine.)"""
    service = 0.002

    def probe(qps: float) -> bool:
        latency = _simulated_latency(qps, service, 40_000, seed=int(qps))
        return bool(np.quantile(latency, percentile) <= bound)

    cap = find_capacity(probe, upper=1 / service, rel_tol=0.02, max_probes=12)
    assert cap.stop == "converged"
    assert cap.qps == pytest.approx(md1_capacity(service, bound, percentile), rel=0.04)
