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
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from harness.backends import Backend, BackendContext, make_backend
from harness.checkpoints.load import Checkpoint, load_checkpoint
from harness.errors import HarnessError
from harness.inputs.workloads import Batch, synthetic_batch
from harness.measure.calibrate import speed_probe
from harness.measure.memory import PeakRSS
from harness.measure.parity import parity_check, parity_message
from harness.measure.realtext import check_real_text
from harness.measure.timing import PerfCounterTimer, Samples, Timer, measure
from harness.records.results import Record, timestamp
from harness.records.store import RecordSink
from harness.records.types import (
    BackendInfo,
    Cold,
    Compute,
    GpuFacts,
    Kernels,
    Memory,
    Parity,
    Throughput,
    TokenizerInfo,
    Workload,
)
from harness.spec.sweep import Case
from harness.stats.summary import is_unstable, summarize

__all__ = [
    "CaseInputs",
    "Event",
    "PreparedGroup",
    "RunOptions",
    "build_record",
    "case_inputs",
    "default_timer",
    "error_record",
    "memory_facts",
    "prepare_group",
    "run_group",
]

log = logging.getLogger(__name__)

#: ``("start", case_id)`` or ``("done", record)``; the CLI turns these into a progress bar.
Event = tuple[str, Any]


@dataclass
class RunOptions:
    cache_dir: Path
    corpus: Path | None = None
    allow_pickle: bool = False
    #: Load a checkpoint whose config asks for custom code as plain XLM-R (never running it).
    allow_custom_code: bool = False
    timer: Timer | None = None
    isolate: bool = False
    group_timeout_s: float | None = None
    #: The watchdog: an isolated worker that reports nothing for this long (a call that
    #: never returns) is killed and its case recorded as an error; the sweep goes on.
    case_timeout_s: float | None = 1800.0
    #: A ceiling on an isolated worker's address space (bytes; None: none), so a case that
    #: exhausts it fails "out of memory" in its worker instead of swapping the machine.
    worker_memory_bytes: int | None = None
    repeat: int = 0


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text


def error_record(
    case: Case, status: str, message: str, case_id: str | None = None, **extra: Any
) -> Record:
    """The record of a case that was not measured (``error``, ``invalid``, ``skipped``):
    the one place such records are built, by the runner, the launcher, comparisons and
    ``serve-bench`` (whose case ids name its serving settings: ``case_id``)."""
    return Record(
        case_id=case_id or case.case_id,
        case=case.to_dict(),
        status=status,
        message=message,
        started_at=timestamp(),
        **extra,
    )


def memory_facts(memory: PeakRSS, group: PreparedGroup) -> Memory:
    """A measured case's memory: its peak resident memory above its start, and the weights'."""
    return {
        "peak_rss_delta_bytes": memory.peak_delta(),
        "rss_before_bytes": memory.before,
        "method": memory.method,
        "param_bytes": group.ckpt.weights.param_bytes,
    }


@dataclass
class PreparedGroup:
    ckpt: Checkpoint
    backend: Backend
    info: BackendInfo
    cold: Cold
    parity: Parity


def unchecked_parity(got: np.ndarray, name: str) -> Parity:
    """No PyTorch weights to compare with (an ONNX export given without ``reference``): the
    probe still ran, its outputs are finite or the case is invalid; the record says so."""
    finite = bool(np.isfinite(got).all())
    return {
        "ok": finite,
        "checked": False,
        "note": f"{name} has no reference weights: outputs not compared"
        + ("" if finite else "; the probe returned non-finite values"),
    }


def prepare_group(case: Case, opts: RunOptions) -> PreparedGroup:
    torch.set_num_threads(case.threads)
    memory = PeakRSS()
    memory.start()
    attn = dict(case.options).get("attn_implementation", "sdpa")
    ckpt = load_checkpoint(
        case.model,
        opts.cache_dir,
        allow_pickle=opts.allow_pickle,
        allow_custom_code=opts.allow_custom_code,
        attn_implementation=attn,
    )
    choices = case.model.choices
    example = synthetic_batch(2, 16, ckpt.arch.vocab, choices=choices, seed=1, pad_rows=True)
    probe = synthetic_batch(3, 24, ckpt.arch.vocab, choices=choices, seed=2, pad_rows=True)
    reference = None
    if ckpt.model is not None:  # an ONNX export without reference weights has none
        with torch.inference_mode():
            reference = ckpt.model(probe.input_ids, probe.attention_mask).float().numpy()
    ctx = BackendContext(case.device, case.dtype, case.threads, opts.cache_dir, case.options)
    backend = make_backend(case.backend, ctx)
    start = time.perf_counter()
    # Each backend says what it did in its own words; BackendInfo lists every key they use
    # (the suite validates each record it writes against the published schema).
    info = cast(BackendInfo, backend.prepare(ckpt, example))
    prepare_s = time.perf_counter() - start
    if case.device == "cuda":
        from harness.measure.gpu import gpu_env, measure_matmul_peak

        info = info | {
            "gpu_name": gpu_env().get("gpu_name"),
            "measured_matmul_tflops": measure_matmul_peak(case.dtype),
        }
    got = backend.output(backend.run(backend.bind(probe)))
    backend.sync()
    if reference is None:
        parity = unchecked_parity(got, ckpt.spec.name)
    elif getattr(backend, "approximate", False):
        from harness.measure.accuracy import DEFAULT_MIN_COSINE, accuracy_facts

        threshold = float(dict(case.options).get("min_cosine", DEFAULT_MIN_COSINE))
        parity = accuracy_facts(got, reference, case.model.head, threshold)
    else:
        parity = parity_check(got, reference, case.dtype)
    parity["probe_shape"] = list(probe.input_ids.shape)
    # The resident peak of loading + preparing (export, optimizer, trace, compile): what a
    # machine must have free to get this backend ready, apart from what serving then needs.
    cold: Cold = {
        "load_s": ckpt.load_s,
        "prepare_s": prepare_s,
        "prepare_peak_rss_bytes": memory.before + memory.peak_delta(),
    }
    return PreparedGroup(ckpt, backend, info, cold, parity)


def _workload(
    case: Case, ckpt: Checkpoint, opts: RunOptions
) -> tuple[list[Batch], TokenizerInfo, Workload]:
    if case.language is None:
        batch = synthetic_batch(
            case.batch_size, case.seq_len, ckpt.arch.vocab, choices=case.model.choices, seed=0
        )
        tokenizer: TokenizerInfo = {"kind": "none", "note": "synthetic token ids, no tokenizer"}
        synthetic: Workload = {"kind": "synthetic", "n_batches": 1, "pad_share": 0.0}
        return [batch], tokenizer, synthetic
    from harness.inputs.textload import language_workload

    return language_workload(case, ckpt, opts.corpus, opts.cache_dir)


@dataclass
class CaseInputs:
    """A case's batches, bound to its backend, and the facts to record about them."""

    batches: list[Batch]
    calls: list[Callable[[], object]]
    tokenizer: TokenizerInfo
    workload: Workload
    #: Seconds spent binding the batches: ~0 for most backends; CUDA-graph capture (and the
    #: compilation a compiled module does on its first call at a shape) for ``cuda-graph``.
    bind_s: float = 0.0


def case_inputs(case: Case, group: PreparedGroup, opts: RunOptions) -> CaseInputs:
    if case.seq_len > group.ckpt.arch.max_seq_len:
        raise HarnessError(
            f"sequence length {case.seq_len} exceeds {group.ckpt.arch.max_seq_len}, the most "
            f"{case.model.name}'s {group.ckpt.arch.max_positions} positions allow"
        )
    batches, tokenizer, workload = _workload(case, group.ckpt, opts)
    backend = group.backend
    start = time.perf_counter()
    bound = [backend.bind(b) for b in batches]
    bind_s = time.perf_counter() - start
    calls: list[Callable[[], object]] = [functools.partial(backend.run, x) for x in bound]
    return CaseInputs(batches, calls, tokenizer, workload, bind_s)


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
    if case.language is not None:
        check_real_text(record, case, group, inputs, timer, samples)
    record.workload["repeat"] = opts.repeat
    return record, kernel_profile(case, inputs.calls[0])


def build_record(
    case: Case,
    group: PreparedGroup,
    inputs: CaseInputs,
    samples: Samples,
    first_call_s: float,
    memory: PeakRSS,
    device: GpuFacts | None = None,
) -> Record:
    """Statistics, throughput, memory and compute of a measured case, as a versioned record."""
    batches, workload = inputs.batches, inputs.workload.copy()
    memory_row = memory_facts(memory, group)
    summary = summarize(samples.values, len(batches))
    unstable = is_unstable(summary.rel_ci, case.measure.target_rel_ci)
    warnings = list(summary.warnings)
    if unstable:
        warnings.insert(0, f"unstable: median ±{100 * summary.rel_ci:.0f}% (95% CI)")
    n = len(samples.values)
    seqs = [b.sequences for b in batches]
    positions = [b.positions for b in batches]
    real = [b.real_tokens for b in batches]
    passes = [i % len(batches) for i in range(n)]
    total_s = float(np.sum(samples.values))
    throughput: Throughput = {
        "sequences_per_s": sum(seqs[i] for i in passes) / total_s,
        "tokens_per_s": sum(positions[i] for i in passes) / total_s,
        "real_tokens_per_s": sum(real[i] for i in passes) / total_s,
        "basis": "work of all timed calls / their summed time",
    }
    compute = compute_facts(case, group, batches, passes, total_s, summary.p50)
    workload |= {
        "sequences_per_call": float(np.mean(seqs)),
        "positions_per_call": float(np.mean(positions)),
        "real_tokens_per_call": float(np.mean(real)),
        "batch_shapes": [list(s) for s in sorted({tuple(b.input_ids.shape) for b in batches})],
    }
    return Record(
        case_id=case.case_id,
        case=case.to_dict(),
        status="ok",
        message="; ".join(warnings),
        checkpoint=group.ckpt.describe(),
        tokenizer=inputs.tokenizer,
        backend=group.info,
        workload=workload,
        warmup=samples.warmup,
        samples=samples.values,
        stop_reason=samples.stop_reason,
        summary=summary.to_record() | {"unstable": unstable},
        throughput=throughput,
        memory=memory_row,
        parity=group.parity,
        cold=group.cold | {"bind_s": inputs.bind_s, "first_call_s": first_call_s},
        compute=compute,
        gpu=device or {},
        started_at=timestamp(),
        wall_s=samples.wall_s,
    )


def compute_facts(
    case: Case,
    group: PreparedGroup,
    batches: list[Batch],
    passes: list[int],
    total_s: float,
    p50_s: float,
) -> Compute:
    """FLOPs and achieved TFLOP/s (every device); on a GPU also the share of the device's
    peak and the weight-reading floor (see :mod:`harness.measure.roofline`)."""
    from harness.measure.roofline import forward_flops, lookup_peak, roofline, weight_bytes

    arch, spec = group.ckpt.arch, case.model
    per_batch = [
        forward_flops(
            arch,
            int(b.input_ids.shape[0]),
            b.seq_len,
            head=spec.head,
            num_labels=spec.num_labels,
            choices=spec.choices,
        )
        for b in batches
    ]
    facts: Compute = {
        "flops_per_call": float(np.mean(per_batch)),
        "achieved_tflops": sum(per_batch[i] for i in passes) / total_s / 1e12,
        "formula": "harness.measure.roofline.forward_flops",
    }
    if case.device != "cuda":
        return facts
    name = str(group.info.get("gpu_name", ""))
    peak = lookup_peak(name)
    bytes_per = 2 if case.dtype in ("bfloat16", "float16") else 4
    table = peak.tflops.get(case.dtype) if peak else None
    line = roofline(
        facts["flops_per_call"],
        p50_s,
        weight_bytes(arch, bytes_per),
        peak_tflops=table,
        bandwidth_tbs=peak.bandwidth_tbs if peak else None,
        peak_source=f"data sheet: {peak.name}" if peak else "unknown device",
    )
    facts |= {"roofline_at_p50": line.to_dict()}
    measured = group.info.get("measured_matmul_tflops")
    if measured:
        facts["share_of_measured_matmul_peak"] = line.achieved_tflops / measured
    return facts


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
