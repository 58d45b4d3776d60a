"""Where one call's GPU time goes: its kernels grouped by kind, and the costliest few.

At small batch the question is not "how many TFLOP/s" but "which kernels, and how long each":
a forward that launches 220 kernels for 1 ms spends it in GEMMs far from their weight-reading
floor, in attention and in the fused normalisation/elementwise kernels around them. The kinds
come from kernel names (cuBLAS ``nvjet``/``gemm``, CUTLASS, Inductor's ``triton_tem`` matmul
templates; flash / memory-efficient attention; layer norms; Inductor's fused ``triton_``
kernels; ATen's elementwise kernels), so the split is a reading of names, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.records.types import Kernels, KindTime

__all__ = ["KIND_RULES", "KernelTime", "breakdown", "kernel_kind"]

#: (kind, name fragments), first match wins: attention before GEMM (CUTLASS's memory-efficient
#: attention is named ``fmha_cutlass…``), Inductor's matmul templates before its other kernels.
KIND_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash", "fmha", "attention", "attn", "sdpa")),
    (
        "gemm",
        ("gemm", "nvjet", "cutlass", "xmma", "cublas", "triton_tem", "matmul", "wgmma", "_mm_"),
    ),
    ("norm", ("layer_norm", "layernorm", "rms_norm")),
    ("fused (Inductor)", ("triton_",)),
    ("copy", ("memcpy", "memset", "copy_kernel", "cat_", "catarray")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "reduce", "softmax", "gelu")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    for kind, fragments in KIND_RULES:
        if any(f in low for f in fragments):
            return kind
    return "other"


@dataclass(frozen=True)
class KernelTime:
    name: str
    seconds: float


def breakdown(kernels: Iterable[KernelTime], top: int = 5) -> Kernels:
    """Counts and device time per kind, and the ``top`` kernel names by summed time."""
    by_kind: dict[str, KindTime] = {}
    by_name: dict[str, list[float]] = {}
    for k in kernels:
        slot = by_kind.setdefault(kernel_kind(k.name), {"kernels": 0, "device_time_s": 0.0})
        slot["kernels"] += 1
        slot["device_time_s"] += k.seconds
        by_name.setdefault(k.name, []).append(k.seconds)
    ranked = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]
    return {
        "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]["device_time_s"])),
        "top": [
            {
                "name": name[:160],
                "kind": kernel_kind(name),
                "calls": len(times),
                "device_time_s": sum(times),
            }
            for name, times in ranked
        ],
        "kinds_from": "kernel names (harness.measure.kernels.KIND_RULES)",
    }
