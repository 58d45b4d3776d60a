"""GPU arithmetic, tested on the CPU; GPU paths themselves are marked ``gpu`` and skipped
without a CUDA device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.backends import BackendContext, check_backend, make_backend
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.inputs.workloads import synthetic_batch
from harness.measure.gpu import EnergyMeter
from harness.measure.roofline import (
    energy_per_1k,
    forward_flops,
    lookup_peak,
    roofline,
    weight_bytes,
)
from harness.spec.config import HEADS, ArchSpec, MeasureSpec, ModelSpec, resolve_model

ARCH = ArchSpec(layers=2, hidden=64, ffn=128, heads=4, vocab=500, max_positions=130)


@pytest.mark.parametrize("head", HEADS)
def test_flop_formula_matches_torch_flop_counter(head: str, cache_dir: Path) -> None:
    # With plain-matmul attention PyTorch's FlopCounterMode sees every FLOP we count.
    spec = ModelSpec(name=f"flops-{head}", source="random-init", head=head, arch=ARCH, num_labels=5)
    ckpt = load_checkpoint(spec, cache_dir, attn_implementation="eager")
    batch = synthetic_batch(3, 40, ARCH.vocab, choices=spec.choices)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        ckpt.model(batch.input_ids, batch.attention_mask)
    expected = forward_flops(ARCH, 3, 40, head=head, num_labels=5, choices=spec.choices)
    assert counter.get_total_flops() == expected


def test_xlmr_large_flops_by_hand() -> None:
    large = resolve_model("xlmr-large").arch
    per_layer = 8 * 128 * 1024**2 + 4 * 128**2 * 1024 + 4 * 128 * 1024 * 4096
    assert forward_flops(large, 1, 128) == 24 * per_layer == 78_920_024_064


def test_weight_bytes_counts_non_embedding_parameters(cache_dir: Path) -> None:
    ckpt = load_checkpoint(ModelSpec(name="wb", source="random-init", arch=ARCH), cache_dir)
    encoder = sum(p.numel() for n, p in ckpt.model.named_parameters() if ".encoder." in f".{n}")
    assert weight_bytes(ARCH, 4) == 4 * encoder
    large = resolve_model("xlmr-large").arch
    assert 1.2e9 < weight_bytes(large, 4) < 1.3e9  # ~302 M non-embedding parameters


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA L4", "L4"),
        ("Some CPU", None),
    ],
)
def test_peak_lookup(name: str, expected: str | None) -> None:
    peak = lookup_peak(name)
    assert (peak.name if peak else None) == expected


def test_roofline_arithmetic() -> None:
    line = roofline(
        1e12, 0.002, 600_000_000, peak_tflops=1000.0, bandwidth_tbs=3.0, peak_source="x"
    )
    assert line.achieved_tflops == pytest.approx(500.0)
    assert line.share_of_peak == pytest.approx(0.5)
    assert line.weight_floor_s == pytest.approx(2e-4)
    assert line.over_floor == pytest.approx(10.0)
    unknown = roofline(1e12, 1.0, 1, peak_tflops=None, bandwidth_tbs=None, peak_source="?")
    assert unknown.share_of_peak is None and unknown.weight_floor_s is None


def test_energy_per_thousand_sequences() -> None:
    assert energy_per_1k(50.0, 2000) == pytest.approx(25.0)


class _FakeNvml:
    def __init__(self, energy_mj: list[int] | None, power_mw: list[int]) -> None:
        self.energy, self.power = energy_mj, power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        if self.energy is None:
            raise RuntimeError("not supported")
        return self.energy.pop(0)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self.power.pop(0)


def _meter(nv: _FakeNvml) -> EnergyMeter:
    meter = EnergyMeter()
    meter._nv, meter._handle = nv, object()
    meter._t0 = __import__("time").perf_counter() - 2.0  # pretend 2 s passed
    try:
        meter._e0 = nv.nvmlDeviceGetTotalEnergyConsumption(None) / 1e3
    except RuntimeError:
        meter._e0 = None
    meter._p0 = nv.nvmlDeviceGetPowerUsage(None) / 1e3
    return meter


def test_energy_counter_and_power_fallback() -> None:
    counted = _meter(_FakeNvml([1_000_000, 1_700_000], [300_000])).stop()
    assert counted["method"] == "nvml energy counter" and counted["joules"] == pytest.approx(700.0)
    sampled = _meter(_FakeNvml(None, [300_000, 500_000])).stop()
    assert sampled["method"] == "mean power x time"
    # the mean power times the time that really passed (at least the pretended 2 s)
    assert sampled["seconds"] >= 2.0
    assert sampled["joules"] == pytest.approx(400 * sampled["seconds"])
    assert EnergyMeter().stop()["method"].startswith("unavailable")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU paths")
@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("cuda-graph", "CUDA graphs need a CUDA device"),
        ("cuda-graph-buckets", "CUDA graphs need a CUDA device"),
        ("compile", "no CUDA device"),
        ("eager", "no CUDA device"),
        ("torchscript", "no CUDA device"),
    ],
)
def test_gpu_backends_say_unavailable(backend: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        check_backend(backend, "cuda")


def test_cuda_graph_is_gpu_only() -> None:
    with pytest.raises(HarnessError, match="does not run on cpu"):
        check_backend("cuda-graph", "cpu")


def test_onnxruntime_cuda_provider_unavailable_is_clean() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu installed")
    with pytest.raises(HarnessError, match="install onnxruntime-gpu"):
        check_backend("onnxruntime", "cuda")


@pytest.mark.slow
def test_compile_backend_parity_on_cpu(cache_dir: Path) -> None:
    ckpt = load_checkpoint(
        ModelSpec(name="compile-cpu", source="random-init", arch=ARCH), cache_dir
    )
    probe = synthetic_batch(3, 24, ARCH.vocab, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    b = make_backend(
        "compile", BackendContext("cpu", "float32", 1, cache_dir, (("mode", "default"),))
    )
    info = b.prepare(ckpt, synthetic_batch(2, 16, ARCH.vocab))
    got = b.output(b.run(b.bind(probe)))
    assert info["mode"] == "default"
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)


# ---- on a real GPU -------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["eager", "torchscript", "cuda-graph", "compile"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gpu_backend_parity(backend: str, dtype: str, cache_dir: Path) -> None:
    from harness.measure.parity import parity_tolerance

    ckpt = load_checkpoint(ModelSpec(name="gpu-parity", source="random-init", arch=ARCH), cache_dir)
    probe = synthetic_batch(3, 24, ARCH.vocab, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    b = make_backend(backend, BackendContext("cuda", dtype, 1, cache_dir))
    b.prepare(ckpt, synthetic_batch(2, 16, ARCH.vocab, pad_rows=True))
    got = b.output(b.run(b.bind(probe)))
    b.sync()
    assert np.abs(got - reference).max() <= parity_tolerance(dtype, reference)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_graph_buckets_parity_at_shapes_between_buckets(dtype: str, cache_dir: Path) -> None:
    from harness.measure.parity import parity_tolerance

    ckpt = load_checkpoint(ModelSpec(name="gpu-parity", source="random-init", arch=ARCH), cache_dir)
    b = make_backend("cuda-graph-buckets", BackendContext("cuda", dtype, 1, cache_dir))
    info = b.prepare(ckpt, synthetic_batch(8, 64, ARCH.vocab, pad_rows=True))
    assert "8x64" in info["buckets"] and info["capture_s_total"] > 0
    for rows, length in ((3, 24), (1, 64), (8, 17)):
        probe = synthetic_batch(rows, length, ARCH.vocab, seed=rows, pad_rows=True)
        with torch.inference_mode():
            reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
        got = b.output(b.run(b.bind(probe)))
        b.sync()
        assert got.shape == reference.shape
        assert np.abs(got - reference).max() <= parity_tolerance(dtype, reference)
    b.close()


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["true", "varlen"])
def test_packed_eager_on_the_gpu_matches_padded(mode: str, cache_dir: Path) -> None:
    """Packing (no padded position computed) on CUDA: outputs per sentence equal padded
    eager's within the dtype's tolerance."""
    from harness.measure.parity import parity_tolerance

    ckpt = load_checkpoint(ModelSpec(name="gpu-parity", source="random-init", arch=ARCH), cache_dir)
    probe = synthetic_batch(6, 40, ARCH.vocab, seed=9, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    b = make_backend("eager", BackendContext("cuda", "bfloat16", 1, cache_dir, (("pack", mode),)))
    b.prepare(ckpt, synthetic_batch(2, 16, ARCH.vocab, pad_rows=True))
    got = b.output(b.run(b.bind(probe)))
    b.sync()
    assert np.abs(got - reference).max() <= parity_tolerance("bfloat16", reference)


@pytest.mark.gpu
def test_gpu_sweep_records_gpu_facts(tmp_path: Path, cache_dir: Path) -> None:
    from harness.execution.launcher import run_sweep
    from harness.execution.options import RunOptions
    from harness.records.results import load_run
    from harness.spec.sweep import SweepSpec

    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager", "cuda-graph"),
        batch_sizes=(4,),
        seq_lens=(64,),
        device="cuda",
        dtype="bfloat16",
        isolate=False,
        measure=MeasureSpec(max_time_s=0.3),
    )
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir)))
    for rec in run.records:
        assert rec.status == "ok", rec.message
        assert rec.gpu["max_allocated_bytes"] > 0
        assert rec.compute["achieved_tflops"] > 0
        assert "roofline_at_p50" in rec.compute and "compute" not in rec.gpu
        kernels = rec.gpu["kernels"]
        assert kernels["per_call"] > 0 and "gemm" in kernels["by_kind"]
        assert sum(k["kernels"] for k in kernels["by_kind"].values()) == kernels["per_call"]
    assert run.meta.env["gpu_name"]


def _gpu_record(backend: str, batch: int, seq: int, p50: float, tflops: float) -> Any:
    from harness.records.results import Record

    return Record(
        case_id=f"xlmr-large/{backend}/cuda/bfloat16/b{batch}/s{seq}/t1",
        case={
            "backend": backend,
            "device": "cuda",
            "dtype": "bfloat16",
            "batch_size": batch,
            "seq_len": seq,
        },
        status="ok",
        summary={"p50": p50},
        compute={
            "achieved_tflops": tflops,
            "roofline_at_p50": {
                "achieved_tflops": tflops,
                "share_of_peak": tflops / 989,
                "weight_floor_s": 2e-4,
                "over_floor": p50 / 2e-4,
            },
        },
        gpu={
            "max_allocated_bytes": 2**30,
            "joules_per_1k_sequences": 12.5,
        },
    )


def test_gpu_report_sections_and_targets() -> None:
    from harness.render.gpu import gpu_rows, target_lines

    records = [
        _gpu_record("eager", 1, 128, 7.7e-3, 10.0),
        _gpu_record("cuda-graph", 1, 128, 0.8e-3, 99.0),
        _gpu_record("eager", 64, 512, 0.5, 452.0),
        _gpu_record("compile", 64, 512, 0.4, 630.0),
    ]
    rows = gpu_rows(records)
    assert len(rows) == 4 and rows[1]["× floor"] == "4.0" and rows[0]["J/1k seq"] == "12.5"
    latency, tflops = target_lines(records)
    assert "best p50 0.800 ms (cuda-graph) = 0.80× the 1 ms target (met)" in latency
    assert "best 630 TFLOP/s (compile) = 1.05× the 600 TFLOP/s target (met)" in tflops


def test_gpu_report_shows_where_a_call_spends_its_time() -> None:
    from harness.measure.kernels import KernelTime, breakdown
    from harness.render.gpu import kernel_rows

    rec = _gpu_record("cuda-graph", 1, 128, 1.2e-3, 80.0)
    kernels = [KernelTime("nvjet_x", 6e-6)] * 96 + [KernelTime("flash_fwd", 8e-6)] * 24
    rec.gpu["kernels"] = {"per_call": 120, "device_time_s": 96 * 6e-6 + 24 * 8e-6}
    rec.gpu["kernels"] |= breakdown(kernels)
    (row,) = kernel_rows([rec, _gpu_record("eager", 1, 128, 8e-3, 10.0)])  # no profile: no row
    assert row["kernels"] == "120" and row["gemm"].startswith("96 / 0.576")
    assert row["attention"].startswith("24 / 0.192") and row["norm"] == "–"
    assert row["idle ms"].startswith("0.432") and row["costliest kernel"] == "nvjet_x"


def test_gpu_sweep_file_loads() -> None:
    from harness.spec.sweep import load_sweep

    sweep = load_sweep(Path(__file__).resolve().parent.parent / "bench" / "gpu" / "large.toml")
    assert sweep.device == "cuda" and sweep.dtypes == ("bfloat16",)
    assert set(sweep.backends) == {"eager", "torchscript", "cuda-graph", "compile"}


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: counts replays, can be weak-referenced."""

    def __init__(self) -> None:
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1


def test_cuda_graph_keeps_every_graph_until_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """The H200 failure: graphs captured into one shared pool were dropped once the runner
    let go of a bound batch. The backend must hold every graph until close()."""
    import gc
    import weakref

    from harness.backends.cudagraph import CudaGraphBackend

    made: list[weakref.ref[_FakeGraph]] = []

    def capture(self: CudaGraphBackend, ids: torch.Tensor, mask: torch.Tensor) -> tuple[Any, Any]:
        graph = _FakeGraph()
        made.append(weakref.ref(graph))
        return graph, torch.zeros(ids.shape[0])

    monkeypatch.setattr(CudaGraphBackend, "capture", capture)
    b = CudaGraphBackend(BackendContext("cpu", "float32", 1, Path(".")))
    for batch, seq in ((1, 16), (2, 24), (4, 8)):
        bound = b.bind(synthetic_batch(batch, seq, ARCH.vocab))
        b.run(bound)
        del bound
    gc.collect()
    assert len(made) == 3 and all(ref() is not None for ref in made)
    assert len(b.capture_s) == 3
    b.close()
    gc.collect()
    assert all(ref() is None for ref in made)


@pytest.mark.gpu
def test_cuda_graph_replays_several_shapes_in_one_backend(cache_dir: Path) -> None:
    """Regression test for the allocator assert: several shapes captured into one pool,
    bound batches dropped between cases, every graph replayed again afterwards."""
    import gc

    ckpt = load_checkpoint(ModelSpec(name="gpu-graphs", source="random-init", arch=ARCH), cache_dir)
    b = make_backend("cuda-graph", BackendContext("cuda", "bfloat16", 1, cache_dir))
    b.prepare(ckpt, synthetic_batch(2, 16, ARCH.vocab, pad_rows=True))
    shapes = ((1, 16), (4, 32), (8, 64), (1, 128))
    outs = []
    for batch, seq in shapes:
        bound = b.bind(synthetic_batch(batch, seq, ARCH.vocab, seed=batch))
        for _ in range(3):
            b.run(bound)
        b.sync()
        outs.append(b.output(b.run(bound)).shape)
        del bound
        gc.collect()
    for batch, seq in shapes:  # capture again after the earlier bound batches are gone
        b.run(b.bind(synthetic_batch(batch, seq, ARCH.vocab, seed=9)))
    b.sync()
    b.close()
    assert [s[0] for s in outs] == [s[0] for s in shapes]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["eager", "cuda-graph"])
def test_gpu_fused_qkv_parity(backend: str, cache_dir: Path) -> None:
    from harness.measure.parity import parity_tolerance

    ckpt = load_checkpoint(ModelSpec(name="gpu-fused", source="random-init", arch=ARCH), cache_dir)
    probe = synthetic_batch(3, 24, ARCH.vocab, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    ctx = BackendContext("cuda", "bfloat16", 1, cache_dir, (("fuse_qkv", "true"),))
    b = make_backend(backend, ctx)
    b.prepare(ckpt, synthetic_batch(2, 16, ARCH.vocab, pad_rows=True))
    got = b.output(b.run(b.bind(probe)))
    b.sync()
    b.close()
    assert np.abs(got - reference).max() <= parity_tolerance("bfloat16", reference)


@pytest.mark.parametrize(
    "name", ["large", "frontier-fused", "frontier-autotune", "frontier-compiled"]
)
def test_gpu_sweep_files_have_valid_options(name: str) -> None:
    from harness.backends import BACKENDS
    from harness.spec.sweep import load_sweep

    sweep = load_sweep(Path(__file__).resolve().parent.parent / "bench" / "gpu" / f"{name}.toml")
    assert sweep.device == "cuda" and sweep.models == ("xlmr-large",)
    for backend, options in sweep.backend_options.items():
        BACKENDS[backend].check_options(options)


def test_gpu_case_probe_counts_memory_from_binding_and_energy_after_the_first_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probe's bookkeeping with torch.cuda's allocator calls faked (CPU-only check)."""
    from harness.measure import gpu as gpu

    state = {"allocated": 1000, "peak": 1000}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: state["peak"])
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 4096)
    started: list[str] = []

    class Meter(gpu.EnergyMeter):
        def start(self) -> None:
            started.append("energy")

        def stop(self) -> dict[str, Any]:  # type: ignore[override]
            return {"method": "nvml energy counter", "joules": 3.0, "seconds": 1.0}

        def device_memory_used(self) -> int | None:
            return 7

    probe = gpu.GpuCaseProbe(meter=Meter())
    probe.start()  # before binding: a CUDA graph's pool allocated next is the case's
    state["allocated"] = state["peak"] = 1500
    assert started == []
    probe.start_energy()  # after the first call
    facts = probe.stop(sequences=1000)
    assert started == ["energy"]
    assert facts["resident_before_bytes"] == 1000 and facts["activation_bytes"] == 500
    assert facts["max_allocated_bytes"] == 1500 and facts["device_used_bytes"] == 7
    assert facts["joules_per_1k_sequences"] == pytest.approx(3.0)
