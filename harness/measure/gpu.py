"""GPU measurement: CUDA-event timing, allocator and NVML memory, NVML energy, measured peak.

Why events: a CUDA launch returns before the kernel runs, so a host clock around a call
measures the launch, not the work. Events are recorded on the stream around the call and read
after ``synchronize``, so the time is the GPU's own. Why NVML's energy counter: it integrates
power in the driver; sampling power from Python would miss the short bursts of small batches.
When the counter is not supported, energy is mean power (sampled before and after) × time,
and the record says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.measure.kernels import KernelTime, breakdown
from harness.records.env import nvml
from harness.records.types import Energy, GpuFacts, Kernels

__all__ = [
    "CudaEventTimer",
    "EnergyMeter",
    "count_kernels",
    "measure_matmul_peak",
    "set_precision",
]


@dataclass
class CudaEventTimer:
    """Times one call with CUDA events on the current stream."""

    def now(self) -> float:
        return time.perf_counter()

    def time(self, fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3


def set_precision(dtype: str) -> dict[str, Any]:
    """``tf32`` allows TF32 tensor-core matmuls for float32 storage; every other dtype keeps
    float32 matmuls at full precision. Returns what was set, for the record."""
    allow = dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    torch.set_float32_matmul_precision("high" if allow else "highest")
    return {"allow_tf32": allow, "float32_matmul_precision": "high" if allow else "highest"}


@dataclass
class EnergyMeter:
    """Energy over a timed region, from NVML's counter (mJ) or power × time as a fallback."""

    readings: dict[str, Any] = field(default_factory=dict)
    _nv: Any = None
    _handle: Any = None
    _t0: float = 0.0
    _e0: float | None = None
    _p0: float | None = None

    def start(self) -> None:
        self._nv = nvml()
        if self._nv is None:
            return
        self._handle = self._nv.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        self._t0 = time.perf_counter()
        try:
            self._e0 = self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3
        except Exception:
            self._e0 = None
        self._p0 = self._power()

    def _power(self) -> float | None:
        try:
            return float(self._nv.nvmlDeviceGetPowerUsage(self._handle)) / 1e3
        except Exception:
            return None

    def stop(self) -> Energy:
        if self._nv is None:
            return {"method": "unavailable (no NVML)"}
        seconds = time.perf_counter() - self._t0
        if self._e0 is not None:
            e1 = self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3
            return {"method": "nvml energy counter", "joules": e1 - self._e0, "seconds": seconds}
        p1 = self._power()
        if self._p0 is None or p1 is None:
            return {"method": "unavailable (no power reading)"}
        return {
            "method": "mean power x time",
            "joules": (self._p0 + p1) / 2 * seconds,
            "seconds": seconds,
        }

    def device_memory_used(self) -> int | None:
        if self._nv is None or self._handle is None:
            return None
        return int(self._nv.nvmlDeviceGetMemoryInfo(self._handle).used)


def count_kernels(fn: Callable[[], object]) -> Kernels:
    """Kernels one call launches and their summed device time, from the profiler (CUPTI).

    Small-batch latency is launch-bound: the count says how far a variant got, and why."""
    from torch.autograd import DeviceType  # type: ignore[attr-defined]
    from torch.profiler import ProfilerActivity, profile

    try:
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        kernels = [
            KernelTime(e.name, e.device_time / 1e6)
            for e in prof.events()
            if e.device_type == DeviceType.CUDA
        ]
        facts: Kernels = {
            "per_call": len(kernels),
            "device_time_s": sum(k.seconds for k in kernels),
            "method": "torch.profiler (CUPTI), one call, after the group's timed cases",
        }
        return facts | breakdown(kernels)
    except Exception as exc:  # profiling is a fact about the case, never a reason to fail it
        return {"method": f"unavailable ({type(exc).__name__}: {exc})"[:200]}


def measure_matmul_peak(dtype: str, size: int = 8192, reps: int = 10) -> float:
    """Achievable TFLOP/s of one large square matmul in ``dtype`` (the practical ceiling)."""
    torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype, torch.float32)
    set_precision(dtype)
    a = torch.randn(size, size, device="cuda", dtype=torch_dtype)
    b = torch.randn(size, size, device="cuda", dtype=torch_dtype)
    for _ in range(3):
        a @ b
    timer = CudaEventTimer()
    best = min(timer.time(lambda: a @ b) for _ in range(reps))
    return 2 * size**3 / best / 1e12


@dataclass
class GpuCaseProbe:
    """Per-case GPU memory (allocator peaks, resident before vs the case's own, NVML used) and
    energy. Memory is watched from :meth:`start` (before the case's inputs are bound, so a
    CUDA-graph pool counts as the case's); energy from :meth:`start_energy` (after the first
    call, so a compile on that call does not count as serving energy)."""

    meter: EnergyMeter = field(default_factory=EnergyMeter)
    weights_bytes: int = 0

    def start(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.weights_bytes = torch.cuda.memory_allocated()

    def start_energy(self) -> None:
        torch.cuda.synchronize()
        self.meter.start()

    def stop(self, sequences: int) -> GpuFacts:
        from harness.measure.roofline import energy_per_1k

        torch.cuda.synchronize()
        energy = self.meter.stop()
        peak = torch.cuda.max_memory_allocated()
        out: GpuFacts = {
            "max_allocated_bytes": peak,
            "max_reserved_bytes": torch.cuda.max_memory_reserved(),
            "resident_before_bytes": self.weights_bytes,
            "activation_bytes": max(0, peak - self.weights_bytes),
            "device_used_bytes": self.meter.device_memory_used(),
            "energy": energy,
        }
        if "joules" in energy:
            out["joules_per_1k_sequences"] = energy_per_1k(energy["joules"], sequences)
        return out
