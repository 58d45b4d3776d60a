"""What each side of a pair costs beside its latency — throughput and peak memory — taken over
every process of the comparison, not from whichever record came first.

Throughput: interleaved arms run in the same processes, so the ratio is paired: the median over
processes of candidate / baseline in the same process. Separate runs: the ratio of the median
throughputs.

Peak memory: in an interleaved process the arm warmed up first grows the allocator's arenas;
an arm warmed after it reuses what the first one freed, and its peak above its start is near
zero (an A/A copy of xlmr-mid read 4 KiB against 42 MiB in the first process of a `harness
check --candidate`). So an arm's peak is the median over the processes where it was warmed
first — by rotation each arm is first in a share of them — and, where no record says so
(separate runs, or fewer processes than arms), the median over all of its records.
"""

from __future__ import annotations

import statistics

from harness.records.results import Record

__all__ = ["peak_memory", "throughput_ratio"]


def _process(rec: Record) -> tuple[object, object] | None:
    """The pairing key: one process of one comparison (decide.py pairs the same way)."""
    inter = rec.workload.get("interleaved", {})
    return (inter.get("seed"), inter["process"]) if "process" in inter else None


def _throughput(rec: Record) -> float | None:
    value = rec.throughput.get("sequences_per_s")
    return float(value) if value else None


def throughput_ratio(baseline: list[Record], candidate: list[Record]) -> float | None:
    """Candidate / baseline sequences per second (None when either side has none)."""
    by_a = {p: t for r in baseline if (p := _process(r)) and (t := _throughput(r))}
    by_b = {p: t for r in candidate if (p := _process(r)) and (t := _throughput(r))}
    paired = [by_b[p] / by_a[p] for p in by_a if p in by_b]
    if paired:
        return float(statistics.median(paired))
    ta = [t for r in baseline if (t := _throughput(r))]
    tb = [t for r in candidate if (t := _throughput(r))]
    return float(statistics.median(tb) / statistics.median(ta)) if ta and tb else None


def peak_memory(records: list[Record]) -> int | None:
    """Peak RSS above the start, bytes: the median over the processes where this arm was warmed
    first, else over all records (None when no record measured it)."""
    values = [(r, v) for r in records if (v := r.memory.get("peak_rss_delta_bytes")) is not None]
    first = [
        int(v) for r, v in values if r.workload.get("interleaved", {}).get("warmup_position") == 0
    ]
    chosen = first or [int(v) for _, v in values]
    return int(statistics.median(chosen)) if chosen else None
