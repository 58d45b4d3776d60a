"""Real MLPerf LoadGen scenarios over a fake backend whose service time is known."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from harness.serving.batcher import Request
from harness.serving.capacity import find_capacity
from harness.serving.loadgen import (
    Batching,
    ScenarioResult,
    ScenarioSettings,
    read_detail_log,
    run_confirmed,
    run_scenario,
)
from harness.serving.queueing import md1_capacity

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
    backend = SleepingBackend(0.001)
    settings = ScenarioSettings(
        "server", target_qps=100.0, bound_s=0.05, min_queries=700, min_duration_s=0.5
    )
    r = run_scenario(settings, Batching(4, 0.002), backend, LENGTHS)
    assert r.valid and r.perf_constraints_met and r.early_stopping_met
    assert r.invalid_reason == "" and r.error == ""
    assert r.query_count >= 700 and r.overlatency_count == 0
    assert r.completed_qps == pytest.approx(100.0, rel=0.25)
    assert 0.001 < r.latency_s["p50"] <= r.latency_s["p99"] < 0.05
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
    expected = 8 / backend.mean_service
    assert r.completed_qps == pytest.approx(expected, rel=0.15)


def test_single_stream_runs_one_query_at_a_time() -> None:
    backend = SleepingBackend(0.001)
    settings = ScenarioSettings("single-stream", bound_s=0.01, min_queries=300, min_duration_s=0.2)
    r = run_scenario(settings, Batching(8, 0.05), backend, LENGTHS)
    assert r.valid and set(r.batch_sizes) == {1}
    assert r.latency_s["p90"] == pytest.approx(backend.mean_service, rel=0.5)
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


def test_the_capacity_search_finds_the_md1_answer() -> None:
    """Poisson arrivals, one query at a time, deterministic service: an M/D/1 queue, whose
    latency percentiles have a closed form (harness.serving.queueing). The search over real
    LoadGen Server runs, judged as serve-bench judges them, must land within 10 % of the
    analytic capacity. The bound is on p90: LoadGen's early stopping asks for confidence in
    the percentile, which at p99 and a few thousand queries holds the answer several percent
    below the p99 capacity by design (about p99.5), leaving the 10 % little room for noise.
    Even at p90 it does so with few queries: 1500 per probe landed at 0.896-0.92 of the
    zero-overhead answer on the 2-vCPU Xeon VM (0.868 once in CI), 3000 at 0.947-0.949; in
    CI's full suite 3000 still gave 0.88-0.91, so the reference now also takes off the bound
    the per-query time spent outside the service, measured unloaded on this machine."""
    backend = SleepingBackend(0.002)
    bound = 0.006

    def run(qps: float, queries: int) -> ScenarioResult:
        settings = ScenarioSettings(
            "server",
            target_qps=qps,
            bound_s=bound,
            percentile=0.9,
            min_queries=queries,
            min_duration_s=0.5,
        )
        return run_scenario(settings, Batching(1, 0.0), backend, LENGTHS)

    def probe(qps: float) -> bool:  # judged as serve-bench judges its probes
        return run_confirmed(lambda n: run(qps, n), 3000)[-1].valid

    cap = find_capacity(probe, upper=1 / 0.002, rel_tol=0.04, max_probes=8)
    # What a query spends outside the service itself (LoadGen's issue and response path, the
    # worker's wake-up) adds to every latency: measured unloaded, one query at a time, and
    # taken off the bound, so the M/D/1 reference describes this machine's queue.
    alone = SleepingBackend(0.002)
    single = run_scenario(
        ScenarioSettings("single-stream", bound_s=bound, min_queries=300, min_duration_s=0.3),
        Batching(1, 0.0),
        alone,
        LENGTHS,
    )
    overhead = max(0.0, single.latency_s["p50"] - statistics.median(alone.service))
    analytic = md1_capacity(backend.mean_service, bound - overhead, 0.9)
    assert cap.qps == pytest.approx(analytic, rel=0.10), (cap, backend.mean_service, overhead)


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
