"""Run one (checkpoint, backend) group of cases: load → prepare → parity → measure → records.

Cold costs (load, prepare = export/trace/session build, first call) are measured apart from
the steady state. A backend whose outputs disagree with eager's is recorded ``invalid`` and
never timed. A failing case is recorded with its message and the group goes on; an
out-of-memory failure also marks the group's larger shapes ``skipped`` (they would fail the
same way, slowly).
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable

import torch

from harness.backends import Backend
from harness.errors import HarnessError
from harness.execution.options import Event, RunOptions
from harness.execution.prepared import PreparedGroup, case_inputs, cpu_ceiling, prepare_group
from harness.execution.realtext import check_real_text
from harness.execution.recording import build_record
from harness.execution.task_check import check_task
from harness.measure.calibrate import speed_probe
from harness.measure.memory import PeakRSS
from harness.measure.parity import parity_message
from harness.measure.timing import PerfCounterTimer, Timer, measure
from harness.records.results import Record, error_record
from harness.records.store import RecordSink
from harness.records.types import (
    GpuFacts,
    Kernels,
)
from harness.spec.sweep import Case

__all__ = ["TORCH_STREAM_BACKENDS", "default_timer", "kernel_profile", "run_group"]

log = logging.getLogger(__name__)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text


#: Backends whose work runs on torch's current CUDA stream: timed with CUDA events there.
TORCH_STREAM_BACKENDS = ("eager", "torchscript", "compile", "cuda-graph")


def default_timer(case: Case, backend: Backend) -> Timer:
    """CUDA events for torch backends on a GPU; the host clock with a sync otherwise."""
    if case.device == "cuda" and case.backend in TORCH_STREAM_BACKENDS:
        from harness.measure.gpu import CudaEventTimer

        return CudaEventTimer()
    return PerfCounterTimer(sync=backend.sync)


#: Profiles one call of a measured case after the group's timing is done (or ``None``).
AfterTiming = Callable[[], Kernels] | None


def kernel_profile(case: Case, call: Callable[[], object]) -> AfterTiming:
    """On a GPU, the kernels one call launches and their device time (``harness.measure.gpu``).

    Run only after every case of the group has been timed: a profiler session leaves CUPTI
    subscribed in the process (pytorch/pytorch#144455), which made every later host-bound
    case slower on an H200 (eager b1 x 512: 14.3 ms after one profiled call, 7.9 ms in a
    bare loop)."""
    if case.device != "cuda":
        return None
    from harness.measure.gpu import count_kernels

    return functools.partial(count_kernels, call)


def _measure_case(case: Case, group: PreparedGroup, opts: RunOptions) -> tuple[Record, AfterTiming]:
    probe = None
    if case.device == "cuda":
        from harness.measure.gpu import GpuCaseProbe

        # Device memory from before binding: a shape's CUDA-graph pool and compiled
        # workspaces are what serving it costs above what was already resident.
        probe = GpuCaseProbe()
        probe.start()
    inputs = case_inputs(case, group, opts)
    timer = opts.timer or default_timer(case, group.backend)
    memory = PeakRSS()
    calibration = speed_probe(timer) if case.device == "cpu" else {}
    memory.start()
    first_call_s = timer.time(inputs.calls[0])
    if probe is not None:  # energy of steady-state calls only, not of a first-call compile
        probe.start_energy()
    samples = measure(timer, inputs.calls, case.measure)
    device: GpuFacts = {}
    if probe is not None:
        calls = len(samples.warmup) + len(samples.values)
        mean_seqs = sum(b.sequences for b in inputs.batches) / len(inputs.batches)
        device = probe.stop(int(calls * mean_seqs))
    record = build_record(case, group, inputs, samples, first_call_s, memory, device)
    record.calibration = calibration
    if case.task is not None:
        check_task(record, case, group, inputs)
    elif case.language is not None:
        check_real_text(record, case, group, inputs, timer, samples)
    record.workload["repeat"] = opts.repeat
    return record, kernel_profile(case, inputs.calls[0])


def run_group(
    cases: list[Case], store: RecordSink, opts: RunOptions, emit: Callable[[Event], None]
) -> None:
    """Measure every case of one (checkpoint, backend) group, appending records as it goes."""
    if not cases:
        return
    emit(("start", cases[0].case_id))
    try:
        group = prepare_group(cases[0], opts)
    except Exception as exc:
        message, trace = _one_line(exc), traceback.format_exc()
        for case in cases:
            rec = error_record(case, "error", f"prepare failed: {message}", traceback=trace)
            store.append(rec)
            emit(("done", rec))
        return
    if group.parity["ok"]:
        cpu_ceiling(cases, group)
    oom_at: int | None = None
    # Records whose profiling waits until the group's timing is done (see kernel_profile),
    # kept in case order: once one is held, every later record is held behind it.
    held: list[tuple[Record, AfterTiming]] = []

    def publish(rec: Record) -> None:
        rec.backend = rec.backend or group.info
        store.append(rec)
        emit(("done", rec))

    try:
        for i, case in enumerate(cases):
            if i:
                emit(("start", case.case_id))
            size = case.batch_size * case.seq_len
            after: AfterTiming = None
            if oom_at is not None and size >= oom_at and case.language is None:
                rec = error_record(
                    case, "skipped", f"a smaller shape ({oom_at} tokens) ran out of memory"
                )
            elif not group.parity["ok"]:
                rec = error_record(
                    case,
                    "invalid",
                    parity_message(group.parity),
                    parity=group.parity,
                    backend=group.info,
                    checkpoint=group.ckpt.describe(),
                    cold=group.cold,
                )
            else:
                try:
                    rec, after = _measure_case(case, group, opts)
                except Exception as exc:
                    if _is_oom(exc):
                        oom_at = size
                    trace = traceback.format_exc()
                    log.debug("case %s failed:\n%s", case.case_id, trace)
                    message = _one_line(exc)
                    if _is_oom(exc) and not message.startswith("out of memory"):
                        message = f"out of memory: {message}"
                    rec = error_record(case, "error", message, traceback=trace)
            if after is not None or held:
                held.append((rec, after))
            else:
                publish(rec)
        while held:
            rec, after = held[0]
            if after is not None:
                emit(("start", rec.case_id))  # a worker that dies here is blamed on this case
                rec.gpu["kernels"] = after()
            publish(held.pop(0)[0])
    finally:
        for rec, _ in held:  # interrupted: the timings stand without their kernel counts
            publish(rec)
        group.backend.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    head = text[0] if text else ""
    return f"{type(exc).__name__}: {head}" if not isinstance(exc, HarnessError) else head
