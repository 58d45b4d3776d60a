"""Throughput and peak memory of a pair, over every process (harness.comparison.costs)."""

from __future__ import annotations

import pytest

from harness.comparison.costs import peak_memory, throughput_ratio
from harness.comparison.decide import CompareSettings, compare_records
from harness.records.results import Record

MIB = 1 << 20


def _arm(model: str, process: int, warmed: int, peak: int, seqs: float) -> Record:
    """One interleaved arm's record in one process: warmed at position `warmed`."""
    return Record(
        case_id=f"{model}/eager/b1",
        case={"backend": "eager"},
        status="ok",
        samples=[0.010, 0.011, 0.010, 0.012, 0.011, 0.010],
        throughput={"sequences_per_s": seqs},
        memory={"peak_rss_delta_bytes": peak},
        workload={
            "interleaved": {"process": process, "seed": 7, "block": 3, "warmup_position": warmed}
        },
    )  # type: ignore[arg-type]


def _aa(processes: int) -> tuple[list[Record], list[Record]]:
    """An A/A pair as a rotation records it: the arm warmed first grows the allocator (42 MiB),
    the one warmed second reuses it (4 KiB); each process's speed is its own."""
    a, b = [], []
    for p in range(processes):
        speed = 100.0 * (1 + 0.2 * p)  # processes differ; the arms within one do not
        a.append(_arm("A", p, p % 2, 42 * MIB if p % 2 == 0 else 4096, speed))
        b.append(_arm("B", p, 1 - p % 2, 42 * MIB if p % 2 == 1 else 4096, speed * 1.01))
    return a, b


def test_an_arm_warmed_second_does_not_read_as_free() -> None:
    a, b = _aa(10)
    assert peak_memory(a) == peak_memory(b) == 42 * MIB
    # the first process alone (what a comparison used to show) says B costs nothing
    assert a[0].memory["peak_rss_delta_bytes"] - b[0].memory["peak_rss_delta_bytes"] > 40 * MIB


def test_without_positions_the_median_of_all_records() -> None:
    recs = [_arm("A", p, 0, v, 1.0) for p, v in enumerate([1, 5, 3])]
    for r in recs:
        del r.workload["interleaved"]["warmup_position"]  # type: ignore[misc]
    assert peak_memory(recs) == 3
    assert peak_memory([]) is None


def test_throughput_is_paired_within_processes() -> None:
    a, b = _aa(10)
    # process speeds spread 100-280 seq/s; the pair's ratio is the within-process 1.01
    assert throughput_ratio(a, b) == pytest.approx(1.01)
    # the first process of B against the last of A would read 0.36
    assert _tp(b[0]) / _tp(a[-1]) < 0.4


def test_separate_runs_use_the_median_throughputs() -> None:
    a = [_arm("A", 0, 0, 0, t) for t in (100.0, 110.0, 400.0)]
    b = [_arm("B", 0, 0, 0, t) for t in (120.0, 132.0, 10.0)]
    for r in a + b:
        r.workload = {}
    assert throughput_ratio(a, b) == pytest.approx(120.0 / 110.0)
    assert throughput_ratio(a, []) is None


def test_the_comparison_row_carries_them() -> None:
    a, b = _aa(10)
    (row,) = compare_records(a, b, CompareSettings())
    assert row.memory_baseline == row.memory_candidate == 42 * MIB
    assert row.throughput_ratio == pytest.approx(1.01)


def _tp(r: Record) -> float:
    return float(r.throughput["sequences_per_s"])
