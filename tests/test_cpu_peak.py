"""This CPU's own GEMM ceiling per library and precision, and the share of it each CPU record
reports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.measure import cpu_peak
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec

OPENVINO = ("openvino",) if importlib.util.find_spec("openvino") else ()


def test_kernel_per_backend_and_precision() -> None:
    assert cpu_peak.peak_precision("eager", "float32") == ("torch", "fp32")
    assert cpu_peak.peak_precision("torchscript", "bfloat16") == ("torch", "bf16")
    assert cpu_peak.peak_precision("onnxruntime-fused", "float32") == ("onnxruntime", "fp32")
    assert cpu_peak.peak_precision("onnxruntime-int8-static", "float32") == (
        "onnxruntime",
        "int8",
    )
    assert cpu_peak.peak_precision("openvino", "float32", "bf16") == ("openvino", "bf16")
    assert cpu_peak.peak_precision("openvino", "float32", "f32") == ("openvino", "fp32")
    assert cpu_peak.peak_precision("openvino-int8", "float32", "int8") == ("onnxruntime", "int8")
    assert cpu_peak.peak_precision("my-backend", "float32") is None


@pytest.mark.parametrize(
    ("library", "precision"), [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
)
def test_gemm_rate_is_a_positive_rate(
    library: str, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_peak, "SIZE", 128)
    cpu_peak.gemm_peak.cache_clear()
    try:
        rate = cpu_peak.gemm_peak(library, precision, 1)
    finally:
        cpu_peak.gemm_peak.cache_clear()
    assert 0.01 < rate < 1e5  # GFLOP/s of one core, whatever the CPU


def test_records_carry_the_share_of_the_ceiling(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CPU_PEAK", "1")
    monkeypatch.setenv("HARNESS_CPU_PEAK_SIZE", "256")  # the child's ceiling GEMM
    cpu_peak.ceiling.cache_clear()
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager", "onnxruntime", *OPENVINO),
        batch_sizes=(2,),
        seq_lens=(16,),
        isolate=False,
        measure=MeasureSpec(min_iters=3, max_time_s=0.1),
    )
    try:
        run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir)))
    finally:
        cpu_peak.ceiling.cache_clear()
    libraries = set()
    for rec in run.records:
        compute = rec.compute
        peak = compute["cpu_peak"]
        libraries.add(peak["library"])
        assert peak["gflops"] > 0 and "256x256x256" in peak["gemm"] and "child" in peak["gemm"]
        assert compute["share_of_cpu_peak"] == pytest.approx(
            compute["achieved_gflops_at_p50"] / peak["gflops"]
        )
        # Synthetic cases also time their own layer's GEMMs at their shape (2 x 16 rows).
        assert peak["layer_gemms"]["tokens"] == 32 and peak["layer_gemms"]["gflops"] > 0
    assert libraries == {"torch", "onnxruntime", *OPENVINO}


def test_switched_off_by_the_environment(tmp_path: Path, cache_dir: Path) -> None:
    # conftest sets HARNESS_CPU_PEAK=0 for the suite: no ceiling, no share.
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(1,),
        seq_lens=(8,),
        isolate=False,
        measure=MeasureSpec(min_iters=3, max_time_s=0.05),
    )
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir)))
    assert "cpu_peak" not in run.records[0].compute


def test_a_failing_child_is_recorded_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CPU_PEAK_SIZE", "not-a-number")
    cpu_peak.ceiling.cache_clear()
    try:
        got = cpu_peak.ceiling("torch", "fp32", 1, 32, 64, (16,))
    finally:
        cpu_peak.ceiling.cache_clear()
    assert "error" in got and "failed" in str(got["error"])


def test_the_ceiling_is_timed_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """No matrix, arena or thread pool of the timing stays in the measuring process."""
    import psutil

    monkeypatch.setenv("HARNESS_CPU_PEAK_SIZE", "512")
    cpu_peak.ceiling.cache_clear()
    cpu_peak.gemm_peak.cache_clear()
    # Other tests may leave helpers alive (a resource tracker, a server): only new ones count.
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        got = cpu_peak.ceiling("onnxruntime", "fp32", 1, 64, 256, (32, 10_000))
    finally:
        cpu_peak.ceiling.cache_clear()
    assert float(got["gflops"]) > 0 and got["size"] == 512  # type: ignore[arg-type]
    assert set(got["layers"]) == {"32"}  # type: ignore[arg-type]  # 10 000 rows: above the cap
    assert cpu_peak.gemm_peak.cache_info().currsize == 0  # nothing was timed here
    left = {child.pid for child in psutil.Process().children(recursive=True)} - before
    assert not left  # the child that timed it has exited
