"""The runner's order of work within a group: every case timed before any is profiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.execution import runner
from harness.execution.options import RunOptions
from harness.records.results import Record
from harness.spec.config import MeasureSpec, resolve_model
from harness.spec.sweep import Case


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        self.records.append(record)


def _cases() -> list[Case]:
    spec = MeasureSpec(warmup_iters=1, min_iters=3, max_time_s=0.05)
    return [Case(resolve_model("xlmr-tiny"), "eager", b, 16, measure=spec) for b in (1, 2, 4)]


def _instrument(monkeypatch: pytest.MonkeyPatch, profile: Any) -> list[str]:
    """Log every timed case and every profiled call (kernel profiling made to run on CPU)."""
    log: list[str] = []
    real = runner.measure

    def measure(*args: Any) -> Any:
        log.append("time")
        return real(*args)

    monkeypatch.setattr(runner, "measure", measure)
    monkeypatch.setattr(runner, "kernel_profile", lambda case, call: lambda: profile(log, case))
    return log


def test_profiling_waits_until_every_case_of_the_group_is_timed(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    # A profiler session slowed every later case of its process on an H200 (CUPTI stays
    # subscribed), so no case may be timed after one was profiled.
    def profile(log: list[str], case: Case) -> dict[str, Any]:
        log.append("profile")
        return {"per_call": case.batch_size}

    log = _instrument(monkeypatch, profile)
    cases, sink, events = _cases(), ListSink(), []
    runner.run_group(cases, sink, RunOptions(cache_dir=cache_dir), events.append)
    assert log == ["time"] * 3 + ["profile"] * 3
    assert [r.case_id for r in sink.records] == [c.case_id for c in cases]
    assert [r.gpu["kernels"]["per_call"] for r in sink.records] == [1, 2, 4]
    assert all(r.status == "ok" for r in sink.records)
    assert [kind for kind, _ in events].count("done") == 3


def test_interrupted_profiling_still_writes_every_timed_record(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    def profile(log: list[str], case: Case) -> dict[str, Any]:
        if case.batch_size == 2:
            raise KeyboardInterrupt
        return {"per_call": 1}

    _instrument(monkeypatch, profile)
    sink = ListSink()
    with pytest.raises(KeyboardInterrupt):
        runner.run_group(_cases(), sink, RunOptions(cache_dir=cache_dir), lambda e: None)
    assert [r.case["batch_size"] for r in sink.records] == [1, 2, 4]
    assert [("kernels" in r.gpu) for r in sink.records] == [True, False, False]
