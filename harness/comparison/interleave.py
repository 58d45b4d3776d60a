"""Interleaved A/B(/C...) measurement of several checkpoints ("arms") on the same cases.

Machine drift — thermal state, a neighbour process, frequency scaling — changes timings over
minutes. Measured one after the other, two identical checkpoints can differ by more than an
intermediate task ever would. So all arms are prepared side by side in one process and timed
in rounds: each round visits the arms in a fresh random order and takes a block of calls
from each (asv's ``--interleave-rounds``, applied within a process). Drift then lands on every
arm alike, and the per-round ratio measures the checkpoints, not the clock.

Interleaving must not change what it measures. Two things did:

* **Idle arms that still run.** ONNX Runtime's thread pools spin after each run by default;
  the spinning threads of the arms waiting their turn took cores from the arm being timed
  (a 4-arm interleaving ran 1.9x its p50 alone). The ORT backends stop spinning when a run
  returns (:mod:`harness.backends.onnxruntime`, ``spinning``); the torch arms of a process
  share one OpenMP pool, so a waiting torch arm has no threads of its own.
* **Leftovers of the previous arm.** After a switch the caches hold the other arm's weights:
  on a 2-vCPU Xeon VM an XLM-R-shaped model of 12 layers × 256 took about four calls to get
  back to its own speed (b1 × 32: +34 %, +29 %, +20 %, +7 % over its alone p50). So every
  block starts with warm-up calls that are kept apart from the timed ones: at least one, and
  as many as ``warmup_s`` of the slowest arm's calls take.

Blocks are sized in time too (``block_s``, again on the slowest arm's calls, the same count
for every arm so rounds stay pairs), so cheap calls give more samples per switch. Arms are
prepared and first warmed in an order rotated across processes, so no arm is always first
(each is first equally often when the processes are a multiple of the arms). After the rounds, each arm runs once more on its own (``solo``): a longer warm-up, then
a block; :mod:`harness.comparison.alone` checks that interleaved and solo p50 agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.comparison.spec import InterleaveSpec
from harness.execution.options import Event, RunOptions
from harness.execution.prepared import CaseInputs, PreparedGroup, case_inputs, prepare_group
from harness.execution.recording import build_record
from harness.execution.runner import default_timer
from harness.measure.gcpause import paused_gc
from harness.measure.memory import PeakRSS
from harness.measure.timing import Samples, Timer
from harness.records.results import Record, error_record
from harness.records.store import RunStore
from harness.spec.sweep import Case

__all__ = ["InterleaveSpec", "block_sizes", "rotation", "run_interleaved"]

#: No block or warm-up grows past this many calls, however cheap the calls.
MAX_CALLS_PER_BLOCK = 1000


def block_sizes(spec: InterleaveSpec, call_s: float, n_batches: int) -> tuple[int, int]:
    """(timed calls, warm-up calls) per block for calls of ``call_s`` seconds."""
    call_s = max(call_s, 1e-6)
    n = max(spec.block, n_batches, math.ceil(spec.block_s / call_s))
    passes = min(math.ceil(n / n_batches), max(1, MAX_CALLS_PER_BLOCK // n_batches))
    n = n_batches * passes  # whole passes over the batches, bounded
    warm = min(MAX_CALLS_PER_BLOCK, max(1, math.ceil(spec.warmup_s / call_s)))
    return n, warm


def rotation(n: int, shift: int) -> list[int]:
    """``0..n-1`` rotated by ``shift``: over n processes, every arm comes first once."""
    return [(shift + i) % n for i in range(n)]


def run_interleaved(
    arms: list[list[Case]],
    store: RunStore,
    opts: RunOptions,
    spec: InterleaveSpec,
    emit: Callable[[Event], None],
    process: int = 0,
    group_index: int = 0,
) -> None:
    """``arms[i][j]`` is case *j* for arm *i*; every arm has the same keys in the same order.
    ``group_index`` tells apart the backend groups one process runs (it seeds their orders)."""
    rng = np.random.default_rng([spec.seed, process, group_index])
    prepared: dict[int, PreparedGroup] = {}
    try:
        for i in rotation(len(arms), process):
            emit(("start", arms[i][0].case_id))
            prepared[i] = prepare_group(arms[i][0], opts)
        groups = [prepared[i] for i in range(len(arms))]
        for j in range(len(arms[0])):
            cases = [a[j] for a in arms]
            if not all(g.parity["ok"] for g in groups):
                for c, g in zip(cases, groups, strict=True):
                    rec = error_record(
                        c, "invalid", "an arm's outputs differ from eager; not timed",
                        parity=g.parity,
                    )  # fmt: skip
                    store.append(rec)
                    emit(("done", rec))
                continue
            records = _interleave_case(cases, groups, opts, spec, rng, process, process + j, emit)
            for i, rec in enumerate(records):
                rec.workload["interleaved"]["prepared_position"] = rotation(
                    len(arms), process
                ).index(i)
                store.append(rec)
                emit(("done", rec))
    finally:
        for g in prepared.values():
            g.backend.close()


@dataclass
class _Arm:
    """One arm's state while a case is interleaved."""

    case: Case
    group: PreparedGroup
    inputs: CaseInputs
    timer: Timer
    first: float = 0.0
    warmup: list[float] | None = None
    memory: PeakRSS | None = None

    def __post_init__(self) -> None:
        self.values: list[float] = []
        self.block_warmup: list[float] = []
        self.positions: list[int] = []
        self.solo: list[float] = []

    def call(self, k: int) -> float:
        calls = self.inputs.calls
        return self.timer.time(calls[k % len(calls)])

    def block(self, n_warm: int, n: int, out: list[float]) -> None:
        """Warm-up calls (kept apart) on the batches about to run, then ``n`` timed calls;
        call *k* of ``out`` runs batch ``k % n_batches``."""
        self.group.backend.sync()  # a GPU arm finishes before the next one starts
        for w in range(n_warm):
            self.block_warmup.append(self.call(len(out) + w))
        for _ in range(n):
            out.append(self.call(len(out)))


def _interleave_case(
    cases: list[Case],
    groups: list[PreparedGroup],
    opts: RunOptions,
    spec: InterleaveSpec,
    rng: np.random.Generator,
    process: int,
    shift: int,
    emit: Callable[[Event], None],
) -> list[Record]:
    arms = []
    for c, g in zip(cases, groups, strict=True):
        inputs = case_inputs(c, g, opts)
        arms.append(_Arm(c, g, inputs, opts.timer or default_timer(c, g.backend)))
    with paused_gc():  # as harness run times its calls (harness.measure.gcpause)
        return _timed_arms(arms, cases, spec, rng, process, shift, emit)


def _timed_arms(
    arms: list[_Arm],
    cases: list[Case],
    spec: InterleaveSpec,
    rng: np.random.Generator,
    process: int,
    shift: int,
    emit: Callable[[Event], None],
) -> list[Record]:
    n_batches = len(arms[0].inputs.calls)
    first_warmed = rotation(len(arms), shift)
    for i in first_warmed:
        arm = arms[i]
        arm.memory = PeakRSS()
        arm.memory.start()
        arm.first = arm.timer.time(arm.inputs.calls[0])
        n_warm = max(arm.case.measure.warmup_iters, n_batches)
        arm.warmup = [arm.call(k) for k in range(n_warm)]
        arm.memory.freeze()
    # Sized on the slowest arm's steady calls, the same for every arm (pairs stay pairs).
    call_s = max(float(np.median((a.warmup or [a.first])[-n_batches:])) for a in arms)
    block, n_warm = block_sizes(spec, call_s, n_batches)
    for _ in range(spec.rounds):
        emit(("beat", cases[0].case_id))  # progress for the watchdog: a long case is alive
        for pos, i in enumerate(rng.permutation(len(arms))):
            arms[int(i)].block(n_warm, block, arms[int(i)].values)
            arms[int(i)].positions.append(pos)
    if spec.solo:
        for i in rotation(len(arms), shift + 1):
            arms[i].block(2 * n_warm, block, arms[i].solo)
    records: list[Record] = []
    for arm in arms:
        samples = Samples(warmup=arm.warmup or [], values=arm.values, stop_reason="rounds")
        assert arm.memory is not None
        rec = build_record(arm.case, arm.group, arm.inputs, samples, arm.first, arm.memory)
        rec.workload["interleaved"] = {
            "rounds": spec.rounds,
            "block": block,
            "block_warmup": n_warm,
            "arms": len(arms),
            "seed": spec.seed,
            "process": process,
            "positions": arm.positions,
            "warmup_position": first_warmed.index(len(records)),
            "block_warmup_s": arm.block_warmup,
            "solo": arm.solo,
        }
        records.append(rec)
    return records
