"""Real MLPerf LoadGen scenarios over a fake backend whose service time is known."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.serving.batcher import Request
from harness.serving.loadgen import (
    Batching,
    ScenarioResult,
    ScenarioSettings,
    read_detail_log,
    run_confirmed,
    run_scenario,
)

LENGTHS = [10 + i % 40 for i in range(64)]


class SleepingBackend:
    """Serves a batch in ``base + per_query * n`` seconds; remembers what it served."""

    def __init__(self, base: float, per_query: float = 0.0) -> None:
        self.base, self.per_query = base, per_query
        self.service: list[float] = []
        self.batches: list[list[Request]] = []

    def __call__(self, batch: list[Request]) -> None:
        start = time.perf_counter()
        time.sleep(self.base + self.per_query * len(batch))
        self.service.append(time.perf_counter() - start)
        self.batches.append(batch)

    @property
    def mean_service(self) -> float:
        return sum(self.service) / len(self.service)


def test_a_server_run_below_capacity_is_valid_with_every_field_read_back() -> None:
    # A 1 ms service at 100 QPS is 10 % busy; the bound is half a second so that only a stall
    # of that length on a loaded CI machine (not its milliseconds of thread wake-ups) could
    # make the run invalid.
    backend = SleepingBackend(0.001)
    settings = ScenarioSettings(
        "server", target_qps=100.0, bound_s=0.5, min_queries=700, min_duration_s=0.5
    )
    r = run_scenario(settings, Batching(4, 0.002), backend, LENGTHS)
    assert r.valid and r.perf_constraints_met and r.early_stopping_met
    assert r.invalid_reason == "" and r.error == ""
    assert r.query_count >= 700 and r.overlatency_count <= 1
    assert r.completed_qps == pytest.approx(100.0, rel=0.25)
    assert 0.001 < r.latency_s["p50"] <= r.latency_s["p99"] < 0.5
    assert sum(k * v for k, v in r.batch_sizes.items()) == r.query_count
    assert "Server" in str(r.settings["scenario"])
    assert r.settings["loadgen_version"]
    # Every request the batcher ran was a real query of the traffic.
    assert all(0 <= q.index < len(LENGTHS) for b in backend.batches for q in b)


def test_an_overloaded_server_run_is_invalid() -> None:
    backend = SleepingBackend(0.004)  # at most 250 QPS one at a time
    settings = ScenarioSettings(
        "server", target_qps=500.0, bound_s=0.02, min_queries=700, min_duration_s=0.3
    )
    r = run_scenario(settings, Batching(1, 0.0), backend, LENGTHS)
    assert not r.valid and not r.perf_constraints_met
    assert r.latency_s["p99"] > 0.02
    assert r.overlatency_count > 0


def test_offline_fills_batches_and_measures_their_throughput() -> None:
    backend = SleepingBackend(0.002, 0.0005)  # a batch of 8 in 6 ms: ~1300 queries/s
    settings = ScenarioSettings("offline", target_qps=3000.0, min_queries=1000, min_duration_s=0.5)
    r = run_scenario(settings, Batching(8, 0.002), backend, LENGTHS)
    assert r.valid
    assert r.mean_batch > 7.5
    # The throughput while the worker ran batches is the service rate of full batches, however
    # long a loaded machine kept it between batches; it can never exceed that rate.
    expected = 8 / backend.mean_service
    assert r.completed_qps / r.busy_share == pytest.approx(expected, rel=0.1)
    assert r.completed_qps <= 1.1 * expected


def test_single_stream_runs_one_query_at_a_time() -> None:
    backend = SleepingBackend(0.001)
    settings = ScenarioSettings("single-stream", bound_s=0.5, min_queries=300, min_duration_s=0.2)
    r = run_scenario(settings, Batching(8, 0.05), backend, LENGTHS)
    assert r.valid and set(r.batch_sizes) == {1}
    # Never faster than the service; waiting for company would add the 50 ms batching window.
    assert 0.9 * backend.mean_service <= r.latency_s["p90"] < 0.045
    assert r.completed_qps == pytest.approx(1 / r.latency_s["mean"])


def test_a_failing_batch_fails_the_run_without_hanging_loadgen() -> None:
    def broken(batch: list[Request]) -> None:
        raise RuntimeError("backend exploded")

    settings = ScenarioSettings(
        "server", target_qps=200.0, bound_s=0.05, min_queries=100, min_duration_s=0.2
    )
    r = run_scenario(settings, Batching(4, 0.001), broken, LENGTHS)
    assert not r.valid
    assert "backend exploded" in r.error


def test_offered_ten_times_capacity_the_queue_and_memory_stay_bounded() -> None:
    """A slow backend (2 ms a query, one at a time: 500 QPS) offered 5000 QPS for a fixed
    count of queries: at most ``max_queue`` wait, the rest are shed and counted, and the
    probe is invalid with the reason, LoadGen's own included."""
    import tracemalloc

    backend = SleepingBackend(0.002)
    settings = ScenarioSettings(
        "server", target_qps=5000.0, bound_s=0.02, min_queries=3000, min_duration_s=0.1
    )
    tracemalloc.start()
    r = run_scenario(settings, Batching(1, 0.0, max_queue=64), backend, LENGTHS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not r.valid
    assert r.shed > 0 and r.max_queue_depth <= 64
    assert r.invalid_reason.startswith(f"overloaded: {r.shed} queries shed, the queue full at 64")
    assert len(backend.batches) + r.shed == r.query_count  # every query answered once
    assert peak < 64 * 2**20  # Python-side memory stayed bounded


def test_the_detail_log_parser_keeps_the_last_value_and_skips_noise(tmp_path: Path) -> None:
    log = tmp_path / "mlperf_log_detail.txt"
    log.write_text(
        ':::MLLOG {"key": "result_validity", "value": "INVALID"}\n'
        "not a log line\n"
        ":::MLLOG {broken json\n"
        ':::MLLOG {"key": "result_validity", "value": "VALID"}\n',
        encoding="utf-8",
    )
    assert read_detail_log(log) == {"result_validity": "VALID"}


def test_an_early_stopping_only_failure_is_rerun_with_twice_the_queries() -> None:
    from dataclasses import replace

    base = ScenarioResult(
        "server", 100.0, False, "early stopping", True, False, 700, 5, 99.0, 99.0, {}, {}, 0.5, 7.0
    )
    asked: list[int] = []

    def once(n: int) -> ScenarioResult:
        asked.append(n)
        return base if len(asked) == 1 else replace(base, valid=True, early_stopping_met=True)

    runs = run_confirmed(once, 700)
    assert asked == [700, 1400] and runs[-1].valid
    asked.clear()
    over = replace(base, perf_constraints_met=False)  # the percentile itself missed: no rerun
    assert run_confirmed(lambda n: asked.append(n) or over, 700) == (over,)
    assert asked == [700]
