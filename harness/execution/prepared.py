"""A (checkpoint, backend) group made ready: loaded, prepared, its parity checked once;
and a case's inputs bound to it (synthetic, or real text per language)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from harness.backends import Backend, BackendContext, make_backend
from harness.checkpoints.load import Checkpoint, load_checkpoint
from harness.errors import HarnessError
from harness.execution.options import RunOptions
from harness.inputs.tasks import TaskWorkload
from harness.inputs.workloads import Batch, synthetic_batch
from harness.measure.memory import PeakRSS
from harness.measure.parity import parity_check
from harness.records.types import (
    BackendInfo,
    Cold,
    CpuPeak,
    Parity,
    TokenizerInfo,
    Workload,
)
from harness.spec.sweep import Case

__all__ = ["CaseInputs", "PreparedGroup", "case_inputs", "prepare_group", "unchecked_parity"]


@dataclass
class PreparedGroup:
    ckpt: Checkpoint
    backend: Backend
    info: BackendInfo
    cold: Cold
    parity: Parity
    #: CPU: one layer's bare GEMMs at each synthetic case's row count, GFLOP/s (cpu_ceiling).
    cpu_layers: dict[int, float] = field(default_factory=dict)


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
    calibration, calibration_facts = _calibration(case, ckpt, opts)
    ctx = BackendContext(
        case.device, case.dtype, case.threads, opts.cache_dir, case.options,
        tuple(calibration), calibration_facts,
    )  # fmt: skip
    backend = make_backend(case.backend, ctx)
    start = time.perf_counter()
    # Each backend says what it did in its own words; BackendInfo lists every key they use
    # (the suite validates each record it writes against the published schema).
    info = cast(BackendInfo, backend.prepare(ckpt, example))
    prepare_s = time.perf_counter() - start
    if case.device == "cuda":
        from harness.measure.gpu import measure_matmul_peak
        from harness.records.env import gpu_env

        info = info | {
            "gpu_name": gpu_env().get("gpu_name"),
            "measured_matmul_tflops": measure_matmul_peak(case.dtype),
        }
    got = backend.output(backend.run(backend.bind(probe)))
    backend.sync()
    if reference is None:
        parity = unchecked_parity(got, ckpt.spec.name)
    elif getattr(backend, "approximate", False) or (
        case.device == "cpu" and case.dtype in ("bfloat16", "float16")
    ):  # reduced precision on a CPU is judged by what it answers, as int8 is
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


def _calibration(
    case: Case, ckpt: Checkpoint, opts: RunOptions
) -> tuple[list[Batch], dict[str, Any]]:
    """Calibration sentences for a static int8 backend (none for the others)."""
    from harness.backends import BACKENDS

    if not getattr(BACKENDS.get(case.backend), "calibrated", False):
        return [], {}
    if opts.corpus is None:
        raise HarnessError(
            f"{case.backend} calibrates on real sentences: it needs a corpus (--corpus)"
        )
    from harness.backends.openvino import CALIBRATION_SENTENCES
    from harness.inputs.textload import calibration_batches
    from harness.inputs.tokenization import get_tokenizer

    tok = get_tokenizer(case.model.source, ckpt.path, opts.corpus, opts.cache_dir)
    languages = dict(case.options).get("calibration_languages", "eng")
    batches, facts = calibration_batches(
        opts.corpus, languages, tok, ckpt.arch.vocab, 128, CALIBRATION_SENTENCES
    )
    return batches, facts | {"tokenizer": tok.info.get("sha256", "")}


def cpu_ceiling(cases: list[Case], group: PreparedGroup) -> None:
    """This CPU's GEMM rate for the group's precision with the backend's own kernels, and one
    layer's bare GEMMs at each synthetic case's shape (:mod:`harness.measure.cpu_peak`, timed
    in a child process once the group is prepared, before any case): into ``group.info``
    (``cpu_peak``) and ``group.cpu_layers``. Nothing when there is no such kernel to time, on
    a GPU, or with ``HARNESS_CPU_PEAK=0``."""
    from harness.measure.cpu_peak import SIZE, ceiling, peak_precision

    case = cases[0]
    if case.device != "cpu" or os.environ.get("HARNESS_CPU_PEAK", "1") == "0":
        return
    ran = str(group.info.get("inference_precision", "")) or None
    which = peak_precision(case.backend, case.dtype, ran)
    if which is None:
        return
    library, precision = which
    arch = group.ckpt.arch
    tokens = tuple(
        sorted(
            {
                c.batch_size * c.seq_len * c.model.choices
                for c in cases
                if c.language is None and c.task is None
            }
        )
    )
    got = ceiling(library, precision, case.threads, arch.hidden, arch.ffn, tokens)
    if "error" in got:
        group.info["cpu_peak_error"] = str(got["error"])
        return
    size = int(cast(int, got.get("size", SIZE)))
    peak: CpuPeak = {
        "library": library,
        "precision": precision,
        "gflops": float(cast(float, got["gflops"])),
        "gemm": f"{size}x{size}x{size}, best call, {case.threads} thread(s), in a child process",
    }
    group.info["cpu_peak"] = peak
    layers = cast(dict[str, float], got.get("layers") or {})
    group.cpu_layers = {int(t): float(v) for t, v in layers.items()}


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
    #: A task case's workload: each call's units and how its output becomes the answer.
    task: TaskWorkload | None = None


def case_inputs(case: Case, group: PreparedGroup, opts: RunOptions) -> CaseInputs:
    if case.seq_len > group.ckpt.arch.max_seq_len:
        raise HarnessError(
            f"sequence length {case.seq_len} exceeds {group.ckpt.arch.max_seq_len}, the most "
            f"{case.model.name}'s {group.ckpt.arch.max_positions} positions allow"
        )
    if case.task is not None:
        return _task_inputs(case, group, opts)
    batches, tokenizer, workload = _workload(case, group.ckpt, opts)
    backend = group.backend
    start = time.perf_counter()
    bound = [backend.bind(b) for b in batches]
    bind_s = time.perf_counter() - start
    calls: list[Callable[[], object]] = [functools.partial(backend.run, x) for x in bound]
    return CaseInputs(batches, calls, tokenizer, workload, bind_s)


def _served(backend: Backend, bound: Any, finish: Callable[[np.ndarray], Any]) -> Any:
    """One task unit's call as a server makes it: the forward pass, its output on the host,
    and the task's answer from it (labels, the span over all windows, the nearest match)."""
    return finish(backend.output(backend.run(bound)))


def _task_inputs(case: Case, group: PreparedGroup, opts: RunOptions) -> CaseInputs:
    from harness.inputs.tasks import task_case_workload

    task, tokenizer, workload = task_case_workload(case, group.ckpt, opts.corpus, opts.cache_dir)
    backend = group.backend
    start = time.perf_counter()
    bound = [backend.bind(b) for b in task.batches]
    bind_s = time.perf_counter() - start
    facts = workload["task"]
    if task.retrieval is not None:
        # The candidates are encoded once by the backend being measured, outside the unit.
        t0 = time.perf_counter()
        vectors = [backend.output(backend.run(backend.bind(b))) for b in task.retrieval.pool]
        task.retrieval.set_pool(np.concatenate(vectors))
        facts["pool_encode_s"] = time.perf_counter() - t0
        facts["search"] = task.retrieval.library
        queries = backend.output(backend.run(bound[0]))
        reps = []
        for _ in range(20):
            t0 = time.perf_counter()
            task.retrieval.search(queries)
            reps.append(time.perf_counter() - t0)
        facts["search_s_per_unit"] = float(np.median(reps)) / task.units[0]
    calls: list[Callable[[], object]] = [
        functools.partial(_served, backend, x, f) for x, f in zip(bound, task.finish, strict=True)
    ]
    return CaseInputs(task.batches, calls, tokenizer, workload, bind_s, task)
