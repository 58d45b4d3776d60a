"""A measured case as a versioned record: statistics, throughput, memory, compute."""

from __future__ import annotations

import numpy as np

from harness.execution.prepared import CaseInputs, PreparedGroup
from harness.inputs.workloads import Batch
from harness.measure.memory import PeakRSS
from harness.measure.timing import Samples
from harness.records.results import Record, timestamp
from harness.records.types import (
    Compute,
    GpuFacts,
    Memory,
    Throughput,
)
from harness.spec.sweep import Case
from harness.stats.summary import is_unstable, summarize

__all__ = ["build_record", "compute_facts", "memory_facts"]


def memory_facts(memory: PeakRSS, group: PreparedGroup) -> Memory:
    """A measured case's memory: its peak resident memory above its start, and the weights'."""
    return {
        "peak_rss_delta_bytes": memory.peak_delta(),
        "rss_before_bytes": memory.before,
        "method": memory.method,
        "param_bytes": group.ckpt.weights.param_bytes,
    }


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
    compute = compute_facts(case, group, batches, passes, total_s, summary.p50, samples.values)
    if inputs.task is not None and "task" in workload:
        units_per_s = sum(inputs.task.units[i] for i in passes) / total_s
        workload["task"] = workload["task"] | {
            "ms_per_unit_p50": 1000 * summary.p50 / float(np.mean(inputs.task.units)),
            "units_per_s": units_per_s,
        }
        throughput["units_per_s"] = units_per_s
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
    values: list[float] | None = None,
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
        cpu = group.info.get("cpu_peak")
        if cpu and values:
            # Each call's own FLOPs over its own time, the median of those: the rate of the
            # median call, whichever batch it ran (language cases cycle batches of their own
            # lengths).
            achieved = (
                float(np.median([per_batch[i] / t for i, t in zip(passes, values, strict=True)]))
                / 1e9
            )
            facts |= {
                "cpu_peak": cpu,
                "achieved_gflops_at_p50": achieved,
                "share_of_cpu_peak": achieved / cpu["gflops"],
            }
            tokens = case.batch_size * case.seq_len * spec.choices
            layer = group.cpu_layers.get(tokens) if case.language is None else None
            if layer and case.task is None:
                facts["cpu_peak"] = cpu | {"layer_gemms": {"tokens": tokens, "gflops": layer}}
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
