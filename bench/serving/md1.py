"""Real MLPerf LoadGen Server runs against the exact M/D/1 answer, on this machine.

    python bench/serving/md1.py [--trials 3] [--queries 3000]

A fake backend sleeps 2 ms per query, one query at a time; arrivals are LoadGen's Poisson
schedule, so the queue is M/D/1 and its p90 latency has a closed form
(:mod:`harness.serving.queueing`). The capacity search over real LoadGen runs, each probe
judged as ``serve-bench`` judges it, is printed against that answer, with the per-query time
spent outside the service (LoadGen's issue and response path, the worker's wake-up; measured
unloaded, one query at a time) taken off the bound. This was a test until it failed once in a
busy CI run: on a loaded 2-core VM its answer depends on the machine (README, "Serving").
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.records.env import cpu_model
from harness.serving.batcher import Request
from harness.serving.capacity import find_capacity
from harness.serving.loadgen import Batching, ScenarioSettings, run_confirmed, run_scenario
from harness.serving.queueing import md1_capacity

LENGTHS = [10 + i % 40 for i in range(64)]
SERVICE_S, BOUND_S = 0.002, 0.006


class SleepingBackend:
    def __init__(self, base: float) -> None:
        self.base = base
        self.service: list[float] = []

    def __call__(self, batch: list[Request]) -> None:
        start = time.perf_counter()
        time.sleep(self.base)
        self.service.append(time.perf_counter() - start)


def trial(queries: int) -> tuple[float, float]:
    backend = SleepingBackend(SERVICE_S)

    def run(qps: float, n: int):  # type: ignore[no-untyped-def]
        settings = ScenarioSettings(
            "server", target_qps=qps, bound_s=BOUND_S, percentile=0.9, min_queries=n,
            min_duration_s=0.5,
        )  # fmt: skip
        return run_scenario(settings, Batching(1, 0.0), backend, LENGTHS)

    cap = find_capacity(
        lambda q: run_confirmed(lambda n: run(q, n), queries)[-1].valid,
        upper=1 / SERVICE_S,
        rel_tol=0.04,
        max_probes=8,
    )
    alone = SleepingBackend(SERVICE_S)
    single = run_scenario(
        ScenarioSettings("single-stream", bound_s=BOUND_S, min_queries=300, min_duration_s=0.3),
        Batching(1, 0.0),
        alone,
        LENGTHS,
    )
    overhead = max(0.0, single.latency_s["p50"] - statistics.median(alone.service))
    return cap.qps, md1_capacity(statistics.mean(backend.service), BOUND_S - overhead, 0.9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--queries", type=int, default=3000)
    args = p.parse_args()
    print(f"machine: {cpu_model()}")
    for i in range(args.trials):
        found, analytic = trial(args.queries)
        print(f"trial {i + 1}: found {found:.1f} QPS, M/D/1 {analytic:.1f} QPS, "
              f"ratio {found / analytic:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
