from __future__ import annotations

import pytest

from harness.measure.timing import PerfCounterTimer, measure
from harness.spec.config import MeasureSpec

from .fakes import FakeTimer


def test_constant_cost_converges_at_min_iters() -> None:
    timer = FakeTimer([0.01])
    calls = []
    spec = MeasureSpec(
        warmup_iters=3, min_iters=10, max_iters=100, target_rel_ci=0.02, max_time_s=10
    )
    out = measure(timer, [lambda: calls.append(1)], spec)
    assert len(out.warmup) == 3
    assert len(out.values) == 10
    assert out.stop_reason == "converged"
    assert out.rel_ci == 0.0
    assert len(calls) == 13  # warmup calls really ran, and are not in the values
    assert out.wall_s == pytest.approx(0.1)


def test_warmup_excluded_from_values() -> None:
    # The first three calls are slow (lazy init); none of them may reach the values.
    timer = FakeTimer(lambda i: 1.0 if i < 3 else 0.01)
    out = measure(timer, [lambda: None], MeasureSpec(warmup_iters=3, min_iters=10))
    assert out.warmup == [1.0, 1.0, 1.0]
    assert max(out.values) == 0.01


def test_time_budget_stops_noisy_case() -> None:
    # Alternating 1 ms / 3 ms never converges to 2 %: the budget (0.5 s) must stop it.
    timer = FakeTimer([0.001, 0.003])
    spec = MeasureSpec(
        warmup_iters=0, min_iters=10, max_iters=100000, target_rel_ci=0.02, max_time_s=0.5
    )
    out = measure(timer, [lambda: None], spec)
    assert out.stop_reason == "time_budget"
    assert sum(out.values) == pytest.approx(0.5, abs=0.004)
    assert out.rel_ci is not None and out.rel_ci > 0.02


def test_max_iters_stops_first() -> None:
    timer = FakeTimer([0.001, 0.003])
    spec = MeasureSpec(
        warmup_iters=0, min_iters=5, max_iters=40, target_rel_ci=0.001, max_time_s=100
    )
    out = measure(timer, [lambda: None], spec)
    assert out.stop_reason == "max_iters"
    assert len(out.values) == 40


def test_round_robin_over_batches_and_whole_passes() -> None:
    seen: list[int] = []
    calls = [lambda i=i: seen.append(i) for i in range(3)]
    timer = FakeTimer([0.01])
    out = measure(timer, calls, MeasureSpec(warmup_iters=1, min_iters=10, target_rel_ci=0.5))
    # warmup covers each batch once even though warmup_iters=1
    assert seen[:3] == [0, 1, 2]
    assert len(out.warmup) == 3
    # the stop rule only fires after whole passes: 12 values, not 10
    assert len(out.values) == 12
    assert seen[3:] == [0, 1, 2] * 4


def test_min_iters_respected_even_when_budget_is_spent() -> None:
    timer = FakeTimer([1.0, 2.0])
    out = measure(timer, [lambda: None], MeasureSpec(warmup_iters=0, min_iters=8, max_time_s=0.1))
    assert len(out.values) == 8


def test_perf_counter_timer_syncs_around_call() -> None:
    events: list[str] = []
    timer = PerfCounterTimer(sync=lambda: events.append("sync"))
    elapsed = timer.time(lambda: events.append("call"))
    assert events == ["sync", "call", "sync"]
    assert elapsed >= 0


def test_measure_needs_calls() -> None:
    with pytest.raises(ValueError, match="at least one"):
        measure(FakeTimer([1.0]), [], MeasureSpec())


def test_the_collector_is_off_while_calls_are_timed() -> None:
    import gc

    from harness.measure.timing import PerfCounterTimer, measure
    from harness.spec.config import MeasureSpec

    seen: list[bool] = []
    assert gc.isenabled()
    measure(PerfCounterTimer(), [lambda: seen.append(gc.isenabled())], MeasureSpec(min_iters=3))
    assert seen and not any(seen)
    assert gc.isenabled()  # and back on after
