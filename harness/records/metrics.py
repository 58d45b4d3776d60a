"""The metrics the harness gates, tracks and compares, defined once.

Each metric says its unit, which direction is better, how it is computed from a record (the
value ``history`` stores and reports print), which statistic of the raw per-call samples the
gate and comparisons resample (``None``: one number per case, no samples), and its default
regression threshold for ``harness check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.records.results import Record

__all__ = ["METRICS", "Metric"]


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str  # "lower" or "higher"
    description: str
    value: Callable[[Record], float]
    #: Statistic of the per-call latencies the tests resample (``p50``, ``p90``, ``mean``).
    sample_statistic: str | None
    default_threshold: float
    #: ``all`` records, or only ``serving`` ones (``serve-bench``: LoadGen capacity).
    scope: str = "all"

    def applies(self, record: Record) -> bool:
        return self.scope == "all" or record.scenario.get("capacity_qps") is not None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "p50",
            "s",
            "lower",
            "median latency per call (per batch, then combined, for real text)",
            lambda r: float(r.summary["p50"]),
            "p50",
            0.05,
        ),
        Metric(
            "p90",
            "s",
            "lower",
            "90th-percentile latency per call",
            lambda r: float(r.summary["p90"]),
            "p90",
            0.10,
        ),
        Metric(
            "throughput",
            "sequences/s",
            "higher",
            "sequences of all timed calls / their summed time (the mean latency's reciprocal)",
            lambda r: float(r.throughput["sequences_per_s"]),
            "mean",
            0.05,
        ),
        Metric(
            "memory",
            "bytes",
            "lower",
            "peak resident memory during the case above its start",
            lambda r: float(r.memory.get("peak_rss_delta_bytes", 0)),
            None,
            0.10,
        ),
        Metric(
            "capacity",
            "queries/s",
            "higher",
            "highest Poisson load LoadGen judged valid under the latency bound (serve-bench)",
            lambda r: float(r.scenario["capacity_qps"]),
            None,
            0.05,
            scope="serving",
        ),
    )
}
