"""Interleaved A/B(/C...) measurement of several checkpoints ("arms") on the same cases.

Machine drift — thermal state, a neighbour process, frequency scaling — changes timings over
minutes. Measured one after the other, two identical checkpoints can differ by more than an
intermediate task ever would. So all arms are prepared side by side in one process and timed
in rounds: each round visits the arms in a fresh random order and takes a block of samples
from each (asv's ``--interleave-rounds``, applied within a process). Drift then lands on every
arm alike, and the ratio of medians measures the checkpoints, not the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..memory import PeakRSS
from ..results import Record
from ..runner import (
    Event,
    PreparedGroup,
    RunOptions,
    build_record,
    case_inputs,
    error_record,
    prepare_group,
)
from ..store import RunStore
from ..sweep import Case
from ..timing import PerfCounterTimer, Samples

__all__ = ["InterleaveSpec", "run_interleaved"]


@dataclass(frozen=True, slots=True)
class InterleaveSpec:
    min_rounds: int = 5
    max_rounds: int = 30
    block: int = 3
    seed: int = 0


def run_interleaved(
    arms: list[list[Case]],
    store: RunStore,
    opts: RunOptions,
    spec: InterleaveSpec,
    emit: Callable[[Event], None],
    process: int = 0,
) -> None:
    """``arms[i][j]`` is case *j* for arm *i*; every arm has the same keys in the same order.

    Stops a case after ``max_rounds``, or after ``min_rounds`` once the arms together have
    used ``n_arms × measure.max_time_s`` of timed calls.
    """
    rng = np.random.default_rng(spec.seed + 1000 * process)
    # Arms are prepared in a random order per process too: what a process allocated first
    # (and where in memory) must not favour one arm in every process.
    prepared: dict[int, PreparedGroup] = {}
    for i in rng.permutation(len(arms)):
        emit(("start", arms[int(i)][0].case_id))
        prepared[int(i)] = prepare_group(arms[int(i)][0], opts)
    groups = [prepared[i] for i in range(len(arms))]
    try:
        for j in range(len(arms[0])):
            cases = [a[j] for a in arms]
            bad = [(c, g) for c, g in zip(cases, groups, strict=True) if not g.parity["ok"]]
            if bad:
                for c in cases:
                    rec = error_record(
                        c,
                        "invalid",
                        "an arm's outputs differ from eager; not timed",
                        parity=groups[cases.index(c)].parity,
                    )
                    store.append(rec)
                    emit(("done", rec))
                continue
            for rec in _interleave_case(cases, groups, opts, spec, rng, process):
                store.append(rec)
                emit(("done", rec))
    finally:
        for g in groups:
            g.backend.close()


def _interleave_case(
    cases: list[Case],
    groups: list[PreparedGroup],
    opts: RunOptions,
    spec: InterleaveSpec,
    rng: np.random.Generator,
    process: int,
) -> list[Record]:
    inputs = [case_inputs(c, g, opts) for c, g in zip(cases, groups, strict=True)]
    timers = [opts.timer or PerfCounterTimer(sync=g.backend.sync) for g in groups]
    memories, firsts, warmups = [], [], []
    for inp, timer, case in zip(inputs, timers, cases, strict=True):
        memory = PeakRSS()
        memory.start()
        firsts.append(timer.time(inp.calls[0]))
        n_warm = max(case.measure.warmup_iters, len(inp.calls))
        warmups.append([timer.time(inp.calls[i % len(inp.calls)]) for i in range(n_warm)])
        memory.freeze()
        memories.append(memory)
    n_arms = len(cases)
    values: list[list[float]] = [[] for _ in cases]
    block = max(spec.block, len(inputs[0].calls))
    budget = n_arms * cases[0].measure.max_time_s
    spent = 0.0
    rounds = 0
    start = time.perf_counter()
    while rounds < spec.max_rounds and (rounds < spec.min_rounds or spent < budget):
        for i in rng.permutation(n_arms):
            calls = inputs[i].calls
            for _ in range(block):
                value = timers[i].time(calls[len(values[i]) % len(calls)])
                values[i].append(value)
                spent += value
        rounds += 1
    wall = time.perf_counter() - start
    records = []
    for i, case in enumerate(cases):
        samples = Samples(
            warmup=warmups[i],
            values=values[i],
            stop_reason=("max_rounds" if rounds >= spec.max_rounds else "time_budget"),
            wall_s=wall,
        )
        rec = build_record(case, groups[i], inputs[i], samples, firsts[i], memories[i])
        rec.workload["interleaved"] = {
            "rounds": rounds,
            "block": block,
            "arms": n_arms,
            "seed": spec.seed,
            "process": process,
        }
        records.append(rec)
    return records
