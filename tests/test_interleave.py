"""Interleaving that does not change what it measures (:mod:`harness.comparison.interleave`).

On a fake clock whose calls pay a penalty for a few calls after every switch of arm (a real
machine's caches holding the previous arm's weights), the block warm-up must take exactly
that penalty off the timed calls, and the solo check must see it when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.comparison.arms import comparisons_of, fresh_seed, run_comparison
from harness.comparison.decide import CompareSettings
from harness.comparison.interleave import block_sizes, rotation
from harness.comparison.spec import InterleaveSpec
from harness.errors import HarnessError
from harness.execution.options import RunOptions
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec

from .fakes import SwitchingClock

BASE_S = 0.010


def test_block_sizes_follow_the_call_length() -> None:
    spec = InterleaveSpec(block=3, block_s=0.1, warmup_s=0.025)
    assert block_sizes(spec, 0.002, 1) == (50, 13)  # cheap calls: more per switch
    assert block_sizes(spec, 0.5, 1) == (3, 1)  # slow calls: the least block, one warm-up
    assert block_sizes(spec, 0.002, 4) == (52, 13)  # whole passes over four batches
    assert block_sizes(spec, 0.5, 4) == (4, 1)
    assert block_sizes(spec, 1e-9, 1) == (1000, 1000)  # bounded


def test_rotation_puts_every_arm_first_once() -> None:
    firsts = [rotation(3, p)[0] for p in range(6)]
    assert sorted(firsts[:3]) == [0, 1, 2] and firsts[3:] == firsts[:3]


def test_spec_is_checked() -> None:
    with pytest.raises(HarnessError, match="rounds"):
        InterleaveSpec(rounds=1)
    with pytest.raises(HarnessError, match="block"):
        InterleaveSpec(block=0)


def test_a_comparison_draws_its_own_seed() -> None:
    assert len({fresh_seed() for _ in range(5)}) > 1


def _params(backend: object) -> int:
    module = getattr(backend, "module", None)
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _compare(
    tmp_path: Path, cache_dir: Path, warmup_calls: int, *, slower: float = 1.0
) -> tuple[object, list[object]]:
    """xlmr-tiny against xlmr-tiny-deep on a switching fake clock, 4 inline processes;
    the deeper arm costs ``slower`` times the baseline's."""
    from harness.checkpoints.load import load_checkpoint
    from harness.spec.config import resolve_model

    tiny = load_checkpoint(resolve_model("xlmr-tiny"), cache_dir).torch_model()
    small = sum(p.numel() for p in tiny.parameters())
    clock = SwitchingClock(lambda b: BASE_S * (slower if _params(b) > small else 1.0))
    sweep = SweepSpec(
        models=("xlmr-tiny", "xlmr-tiny-deep"),
        backends=("eager",),
        batch_sizes=(1,),
        seq_lens=(8,),
        threads=1,
        measure=MeasureSpec(warmup_iters=2),
    )
    spec = InterleaveSpec(rounds=4, block=3, block_s=0.0, warmup_s=BASE_S * warmup_calls - 1e-9)
    path = run_comparison(
        sweep,
        tmp_path,
        RunOptions(cache_dir=cache_dir, timer=clock),
        settings=CompareSettings(margin=0.05, min_effect=0.05),
        interleave=spec,
        processes=4,
        inline=True,
    )
    run = load_run(path)
    (cmp,) = comparisons_of(run, CompareSettings(margin=0.05, min_effect=0.05))
    return cmp, run.records


def test_block_warmup_takes_the_switch_penalty_off(tmp_path: Path, cache_dir: Path) -> None:
    cmp, records = _compare(tmp_path, cache_dir, warmup_calls=3, slower=1.083)
    (r,) = cmp.results  # type: ignore[attr-defined]
    # every timed call is past the penalty: the exact truth, no spread at all
    assert r.ratio == pytest.approx(1.083)
    assert r.verdict == "slower"
    assert all(min(rec.samples) == max(rec.samples) for rec in records)
    assert {rec.workload["interleaved"]["block_warmup"] for rec in records} == {3}
    for check in r.alone:
        assert check.ratio == pytest.approx(1.0) and check.within_noise
    # the interleaved p50 is what the arm costs alone
    assert r.p50_baseline == pytest.approx(BASE_S)


def test_a_short_warmup_leaves_the_penalty_in(tmp_path: Path, cache_dir: Path) -> None:
    """What counting the calls right after a switch does: the timed calls pay 1.2 and 1.1
    after a switch, and the interleaved latencies are above what the arms cost alone."""
    cmp, records = _compare(tmp_path, cache_dir, warmup_calls=1)
    (r,) = cmp.results  # type: ignore[attr-defined]
    assert max(x for rec in records for x in rec.samples) > 1.15 * BASE_S
    assert r.alone and all(c.ratio > 1.0 for c in r.alone)


def test_the_alone_check_flags_a_moved_p50() -> None:
    from harness.comparison.alone import alone_check
    from harness.records.results import Record

    def rec(p: int, interleaved: float, solo: float) -> Record:
        return Record(
            case_id="a/k",
            case={},
            status="ok",
            samples=[interleaved] * 6,
            workload={"n_batches": 2, "interleaved": {"process": p, "solo": [solo] * 4}},
        )

    moved = alone_check("a", [rec(p, 0.0110 + 1e-5 * p, 0.0100) for p in range(4)])
    assert moved is not None and not moved.within_noise and moved.ratio > 1.09
    assert "moved" in moved.sentence()
    same = alone_check("a", [rec(p, 0.0100 + 2e-4 * (-1) ** p, 0.0100) for p in range(4)])
    assert same is not None and same.within_noise and "within noise" in same.sentence()
    one = alone_check("a", [rec(0, 0.0101, 0.0100)])
    assert one is not None and one.ci_low is None and one.processes == 1


def test_preparation_order_rotates_and_the_seed_is_recorded(
    tmp_path: Path, cache_dir: Path
) -> None:
    """The arms are prepared (and first warmed) in an order rotated by process: with two
    arms, each arm is first in half the processes. (A fixed seed 0 once made the baseline
    first in every process of every job.)"""
    _, records = _compare(tmp_path, cache_dir, warmup_calls=3)
    run = load_run(next(tmp_path.iterdir()))
    seed = run.meta.config["interleave"]["seed"]
    assert {rec.workload["interleaved"]["seed"] for rec in records} == {seed}
    positions: dict[str, list[int]] = {}
    for rec in records:
        positions.setdefault(rec.model, []).extend(rec.workload["interleaved"]["positions"])
    # random round orders: each arm is first in some rounds and second in others
    assert all(set(p) == {0, 1} for p in positions.values())
    for key in ("prepared_position", "warmup_position"):
        by_arm: dict[str, list[int]] = {}
        for rec in records:
            by_arm.setdefault(rec.model, []).append(rec.workload["interleaved"][key])
        assert all(sorted(v) == [0, 0, 1, 1] for v in by_arm.values()), (key, by_arm)
