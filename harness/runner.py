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
from typing import Any

import numpy as np
import torch

from .backends import Backend, BackendContext, make_backend
from .calibrate import speed_probe
from .checkpoints import Checkpoint, load_checkpoint
from .errors import HarnessError
from .memory import PeakRSS
from .results import Record
from .stats import by_batch, is_unstable, summarize
from .store import RunStore
from .sweep import Case
from .timing import PerfCounterTimer, Samples, Timer, measure
from .workloads import Batch, synthetic_batch

__all__ = [
    "Event",
    "Group",
    "RunOptions",
    "build_record",
    "case_inputs",
    "parity_tolerance",
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
    repeat: int = 0


def parity_tolerance(dtype: str, reference: np.ndarray) -> float:
    """Largest acceptable |backend - eager| for a case, scaled by the output's magnitude."""
    scale = max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)
    per_dtype = {"float32": 1e-4, "tf32": 1e-2, "bfloat16": 6e-2, "float16": 2e-2}
    return per_dtype.get(dtype, 1e-4) * scale


def parity_check(got: np.ndarray, reference: np.ndarray, dtype: str) -> dict[str, Any]:
    """Max |backend − eager float32| against the dtype's tolerance. NaN or infinite outputs
    (either side) are reported as such, never as a parity number."""
    out: dict[str, Any] = {"reference": "eager float32 (cpu)"}
    if not np.isfinite(reference).all():
        return out | {"ok": False, "non_finite": "reference", "max_abs_diff": None}
    if not np.isfinite(got).all():
        return out | {"ok": False, "non_finite": "backend", "max_abs_diff": None}
    if got.shape != reference.shape:
        return out | {"ok": False, "shape": list(got.shape), "max_abs_diff": None}
    diff = float(np.max(np.abs(got - reference))) if got.size else 0.0
    tol = parity_tolerance(dtype, reference)
    return out | {"max_abs_diff": diff, "tolerance": tol, "ok": bool(diff <= tol)}


def parity_message(parity: dict[str, Any]) -> str:
    """Why a group is ``invalid``, in one line."""
    if parity.get("kind") == "approximate" and "cosine_mean" in parity:
        return (
            f"approximate outputs below the threshold: mean cosine {parity['cosine_mean']:.4f}"
            f" < {parity['min_cosine']}"
        )
    if parity.get("non_finite") == "reference":
        return "non-finite outputs (NaN/inf) from eager float32 itself: the weights are broken"
    if parity.get("non_finite"):
        return "non-finite outputs (NaN/inf) from this backend"
    if "shape" in parity:
        return f"output shape {parity['shape']} differs from eager's"
    return (
        f"outputs differ from eager: max |diff| {parity['max_abs_diff']:.3g} > "
        f"{parity['tolerance']:.3g}"
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text


def _error_record(case: Case, status: str, message: str, **extra: Any) -> Record:
    return Record(
        case_id=case.case_id,
        case=case.to_dict(),
        status=status,
        message=message,
        started_at=_now(),
        **extra,
    )


@dataclass
class Group:
    ckpt: Checkpoint
    backend: Backend
    info: dict[str, Any]
    cold: dict[str, float]
    parity: dict[str, Any]


def prepare_group(case: Case, opts: RunOptions) -> Group:
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
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).float().numpy()
    ctx = BackendContext(case.device, case.dtype, case.threads, opts.cache_dir, case.options)
    backend = make_backend(case.backend, ctx)
    start = time.perf_counter()
    info = backend.prepare(ckpt, example)
    prepare_s = time.perf_counter() - start
    if case.device == "cuda":
        from .gpu import gpu_env, measure_matmul_peak

        info = info | {
            "gpu_name": gpu_env().get("gpu_name"),
            "measured_matmul_tflops": measure_matmul_peak(case.dtype),
        }
    got = backend.output(backend.run(backend.bind(probe)))
    backend.sync()
    if getattr(backend, "approximate", False):
        from .accuracy import DEFAULT_MIN_COSINE, accuracy_facts

        threshold = float(dict(case.options).get("min_cosine", DEFAULT_MIN_COSINE))
        parity = accuracy_facts(got, reference, case.model.head, threshold)
    else:
        parity = parity_check(got, reference, case.dtype)
    parity["probe_shape"] = list(probe.input_ids.shape)
    # The resident peak of loading + preparing (export, optimizer, trace, compile): what a
    # machine must have free to get this backend ready, apart from what serving then needs.
    cold = {
        "load_s": ckpt.load_s,
        "prepare_s": prepare_s,
        "prepare_peak_rss_bytes": memory.before + memory.peak_delta(),
    }
    return Group(ckpt, backend, info, cold, parity)


def _workload(
    case: Case, ckpt: Checkpoint, opts: RunOptions
) -> tuple[list[Batch], dict[str, Any], dict[str, Any]]:
    if case.language is None:
        batch = synthetic_batch(
            case.batch_size, case.seq_len, ckpt.arch.vocab, choices=case.model.choices, seed=0
        )
        tokenizer = {"kind": "none", "note": "synthetic token ids, no tokenizer"}
        return [batch], tokenizer, {"kind": "synthetic", "n_batches": 1, "pad_share": 0.0}
    from .textload import language_workload

    return language_workload(case, ckpt, opts.corpus, opts.cache_dir)


@dataclass
class CaseInputs:
    """A case's batches, bound to its backend, and the facts to record about them."""

    batches: list[Batch]
    calls: list[Callable[[], object]]
    tokenizer: dict[str, Any]
    workload: dict[str, Any]
    #: Seconds spent binding the batches: ~0 for most backends; CUDA-graph capture (and the
    #: compilation a compiled module does on its first call at a shape) for ``cuda-graph``.
    bind_s: float = 0.0


def case_inputs(case: Case, group: Group, opts: RunOptions) -> CaseInputs:
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
        from .gpu import CudaEventTimer

        return CudaEventTimer()
    return PerfCounterTimer(sync=backend.sync)


def _measure_case(case: Case, group: Group, opts: RunOptions) -> Record:
    inputs = case_inputs(case, group, opts)
    timer = opts.timer or default_timer(case, group.backend)
    memory = PeakRSS()
    probe = None
    if case.device == "cuda":
        from .gpu import GpuCaseProbe

        probe = GpuCaseProbe()
        probe.start()
    calibration = speed_probe(timer) if case.device == "cpu" else {}
    memory.start()
    first_call_s = timer.time(inputs.calls[0])
    samples = measure(timer, inputs.calls, case.measure)
    device = {}
    if probe is not None:
        from .gpu import count_kernels

        calls = 1 + len(samples.warmup) + len(samples.values)
        mean_seqs = sum(b.sequences for b in inputs.batches) / len(inputs.batches)
        device = probe.stop(int(calls * mean_seqs))
        device["kernels"] = count_kernels(inputs.calls[0])
    record = build_record(case, group, inputs, samples, first_call_s, memory, device)
    record.calibration = calibration
    if case.language is not None:
        _no_padding_ceiling(record, case, group, inputs, timer, samples)
    if group.parity.get("kind") == "approximate" and case.language is not None:
        _real_text_accuracy(record, case, group, inputs)
    elif group.info.get("pack") and case.language is not None:
        _real_text_parity(record, case, group, inputs)
    record.workload["repeat"] = opts.repeat
    return record


def _per_batch_medians(values: list[float], n_batches: int) -> list[float]:
    return [float(np.median(s)) for s in by_batch(values, n_batches)]


def _no_padding_ceiling(
    record: Record, case: Case, group: Group, inputs: CaseInputs, timer: Timer, samples: Samples
) -> None:
    """Time the same sentences' real tokens at their mean length, unpadded, and record what
    share of that ceiling the case's own batches reached (both on per-batch medians)."""
    import dataclasses

    from .textload import ceiling_batches

    ceiling = ceiling_batches(inputs.batches, group.ckpt.arch.vocab)
    bound = [group.backend.bind(b) for b in ceiling]
    calls: list[Callable[[], object]] = [functools.partial(group.backend.run, x) for x in bound]
    spec = dataclasses.replace(case.measure, max_time_s=max(0.2, case.measure.max_time_s / 2))
    measured = measure(timer, calls, spec)
    n = len(inputs.batches)
    if len(measured.values) < n or len(samples.values) < n:
        return
    t_case = _per_batch_medians(samples.values, n)
    t_ceiling = _per_batch_medians(measured.values, n)
    real = sum(b.real_tokens for b in inputs.batches)
    ceiling_tokens = sum(b.positions for b in ceiling)
    case_rate = real / sum(t_case)
    ceiling_rate = ceiling_tokens / sum(t_ceiling)
    record.workload["ceiling"] = {
        "what": "each batch's real tokens at their mean length, no padding",
        "shapes": [list(b.input_ids.shape) for b in ceiling],
        "p50_by_batch_s": t_ceiling,
        "samples": measured.values,
    }
    record.throughput |= {
        "ceiling_real_tokens_per_s": ceiling_rate,
        "real_tokens_per_s_at_batch_p50": case_rate,
        "share_of_ceiling": case_rate / ceiling_rate,
    }


def _real_text_parity(record: Record, case: Case, group: Group, inputs: CaseInputs) -> None:
    """An exact backend that reshapes the work (packing) on the case's own real sentences:
    every batch's outputs against padded eager float32's, held to the usual tolerance."""
    worst: dict[str, Any] = {"max_abs_diff": 0.0, "ok": True}
    with torch.inference_mode():
        for batch, call in zip(inputs.batches, inputs.calls, strict=True):
            got = group.backend.output(call())
            ref = group.ckpt.model(batch.input_ids, batch.attention_mask).float().numpy()
            check = parity_check(got, ref, case.dtype)
            if not check["ok"] or (check["max_abs_diff"] or 0) >= worst["max_abs_diff"]:
                worst = check
            if not check["ok"]:
                break
    record.parity = dict(group.parity) | {"real_text": worst | {"batches": len(inputs.batches)}}
    if not worst["ok"]:
        record.status = "invalid"
        record.message = f"on real {case.language} sentences: {parity_message(worst)}"


def _real_text_accuracy(record: Record, case: Case, group: Group, inputs: CaseInputs) -> None:
    """An approximate backend on real sentences: its outputs for every batch of the case
    against eager float32's, per sentence. Below the threshold the case is ``invalid``."""
    from .accuracy import accuracy_facts

    threshold = float(group.parity.get("min_cosine", 0.99))
    facts = []
    with torch.inference_mode():
        for batch, call in zip(inputs.batches, inputs.calls, strict=True):
            got = group.backend.output(call())
            ref = group.ckpt.model(batch.input_ids, batch.attention_mask).float().numpy()
            facts.append(accuracy_facts(got, ref, case.model.head, threshold))
    rows = sum(int(f.get("rows", 0)) for f in facts)
    merged: dict[str, Any] = {
        "batches": len(facts),
        "rows": rows,
        # Weighted by sentences, so a short last batch counts for what it holds.
        "cosine_mean": sum(f.get("cosine_mean", 0.0) * f.get("rows", 0) for f in facts)
        / max(rows, 1),
        "cosine_min": min(f.get("cosine_min", 0.0) for f in facts),
    }
    if all("top1_agreement" in f for f in facts):
        merged["top1_agreement"] = sum(f["top1_agreement"] * f["rows"] for f in facts) / max(
            rows, 1
        )
    record.parity = dict(group.parity) | {"real_text": merged}
    if merged["cosine_mean"] < threshold:
        record.status = "invalid"
        record.message = (
            f"approximate outputs below the threshold on real {case.language} sentences: "
            f"mean cosine {merged['cosine_mean']:.4f} < {threshold}"
        )


def build_record(
    case: Case,
    group: Group,
    inputs: CaseInputs,
    samples: Samples,
    first_call_s: float,
    memory: PeakRSS,
    device: dict[str, Any] | None = None,
) -> Record:
    """Statistics, throughput, memory and compute of a measured case, as a versioned record."""
    batches, workload = inputs.batches, dict(inputs.workload)
    peak = memory.peak_delta()
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
    throughput = {
        "sequences_per_s": sum(seqs[i] for i in passes) / total_s,
        "tokens_per_s": sum(positions[i] for i in passes) / total_s,
        "real_tokens_per_s": sum(real[i] for i in passes) / total_s,
        "basis": "work of all timed calls / their summed time",
    }
    device = dict(device or {})
    device["compute"] = compute_facts(case, group, batches, passes, total_s, summary.p50)
    workload |= {
        "sequences_per_call": float(np.mean(seqs)),
        "positions_per_call": float(np.mean(positions)),
        "real_tokens_per_call": float(np.mean(real)),
        "batch_shapes": sorted({tuple(b.input_ids.shape) for b in batches}),
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
        summary=summary.to_dict() | {"unstable": unstable},
        throughput=throughput,
        memory={
            "peak_rss_delta_bytes": peak,
            "rss_before_bytes": memory.before,
            "method": memory.method,
            "param_bytes": group.ckpt.weights.param_bytes,
        },
        parity=group.parity,
        cold=group.cold | {"bind_s": inputs.bind_s, "first_call_s": first_call_s},
        gpu=device,
        started_at=_now(),
        wall_s=samples.wall_s,
    )


def compute_facts(
    case: Case, group: Group, batches: list[Batch], passes: list[int], total_s: float, p50_s: float
) -> dict[str, Any]:
    """FLOPs and achieved TFLOP/s (every device); on a GPU also the share of the device's
    peak and the weight-reading floor (see :mod:`harness.roofline`)."""
    from .roofline import forward_flops, lookup_peak, roofline, weight_bytes

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
    facts: dict[str, Any] = {
        "flops_per_call": float(np.mean(per_batch)),
        "achieved_tflops": sum(per_batch[i] for i in passes) / total_s / 1e12,
        "formula": "harness.roofline.forward_flops",
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
    cases: list[Case], store: RunStore, opts: RunOptions, emit: Callable[[Event], None]
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
            rec = _error_record(case, "error", f"prepare failed: {message}", traceback=trace)
            store.append(rec)
            emit(("done", rec))
        return
    oom_at: int | None = None
    try:
        for i, case in enumerate(cases):
            if i:
                emit(("start", case.case_id))
            size = case.batch_size * case.seq_len
            if oom_at is not None and size >= oom_at and case.language is None:
                rec = _error_record(
                    case, "skipped", f"a smaller shape ({oom_at} tokens) ran out of memory"
                )
            elif not group.parity["ok"]:
                rec = _error_record(
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
                    rec = _measure_case(case, group, opts)
                except Exception as exc:
                    if _is_oom(exc):
                        oom_at = size
                    trace = traceback.format_exc()
                    log.debug("case %s failed:\n%s", case.case_id, trace)
                    rec = _error_record(case, "error", _one_line(exc), traceback=trace)
            rec.backend = rec.backend or group.info
            store.append(rec)
            emit(("done", rec))
    finally:
        group.backend.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    head = text[0] if text else ""
    return f"{type(exc).__name__}: {head}" if not isinstance(exc, HarnessError) else head
