"""FLOPs, device peaks and the limits a GPU result should be read against. Pure arithmetic.

FLOPs of one XLM-R forward (multiply-add = 2 FLOPs), per layer, for ``T = B·S`` token positions
(padding included: padded positions are computed too) and hidden ``H``, FFN ``F``:

* Q, K, V and output projections: ``4 · 2·T·H·H``
* attention scores ``QKᵀ`` and the weighted sum ``AV``: ``2 · 2·B·S·S·H``
* feed-forward up and down: ``2 · 2·T·H·F``

so ``L · (8·T·H² + 4·B·S²·H + 4·T·H·F)`` plus the head (classifier ``2·B·(H² + H·labels)``,
span ``2·T·H·2``, token ``2·T·H·labels``). Embedding lookups, layer norms, softmax and GELU
are memory-bound and not counted, as is usual for model FLOPs. Multiple choice runs the
encoder on ``B·choices`` sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.records.types import Roofline as RooflineRecord
from harness.spec.config import ArchSpec

__all__ = [
    "PEAKS",
    "DevicePeak",
    "Roofline",
    "energy_per_1k",
    "forward_flops",
    "lookup_peak",
    "roofline",
    "weight_bytes",
]


@dataclass(frozen=True, slots=True)
class DevicePeak:
    """Dense (no sparsity) tensor-core peaks in TFLOP/s and memory bandwidth in TB/s, from
    the vendors' data sheets."""

    name: str
    tflops: dict[str, float]
    bandwidth_tbs: float


PEAKS: tuple[DevicePeak, ...] = (
    DevicePeak("H200", {"bfloat16": 989.0, "float16": 989.0, "tf32": 494.5, "float32": 66.9}, 4.8),
    DevicePeak(
        "H100 NVL", {"bfloat16": 835.0, "float16": 835.0, "tf32": 417.5, "float32": 60.0}, 3.9
    ),
    DevicePeak(
        "H100 PCIe", {"bfloat16": 756.0, "float16": 756.0, "tf32": 378.0, "float32": 51.2}, 2.0
    ),
    DevicePeak("H100", {"bfloat16": 989.0, "float16": 989.0, "tf32": 494.5, "float32": 66.9}, 3.35),
    DevicePeak("A100", {"bfloat16": 312.0, "float16": 312.0, "tf32": 156.0, "float32": 19.5}, 2.0),
    DevicePeak(
        "L40S", {"bfloat16": 362.0, "float16": 362.0, "tf32": 183.0, "float32": 91.6}, 0.864
    ),
    DevicePeak("L4", {"bfloat16": 121.0, "float16": 121.0, "tf32": 60.0, "float32": 30.3}, 0.3),
    DevicePeak("A10", {"bfloat16": 125.0, "float16": 125.0, "tf32": 62.5, "float32": 31.2}, 0.6),
    DevicePeak("T4", {"float16": 65.0, "float32": 8.1}, 0.32),
)


def lookup_peak(gpu_name: str) -> DevicePeak | None:
    """The table entry whose name occurs in the device name (most specific first)."""
    upper = gpu_name.upper()
    for peak in PEAKS:
        if peak.name.upper() in upper:
            return peak
    return None


def forward_flops(
    arch: ArchSpec,
    batch: int,
    seq: int,
    *,
    head: str = "encoder",
    num_labels: int = 3,
    choices: int = 1,
) -> float:
    """Model FLOPs of one forward pass (see the module docstring for the formula)."""
    b = batch * choices
    t = b * seq
    h, f = arch.hidden, arch.ffn
    per_layer = 8 * t * h * h + 4 * b * seq * seq * h + 4 * t * h * f
    total = arch.layers * per_layer
    if head == "sequence-classification":
        total += 2 * b * (h * h + h * num_labels)
    elif head == "question-answering":
        total += 2 * t * h * 2
    elif head == "token-classification":
        total += 2 * t * h * num_labels
    elif head == "multiple-choice":
        total += 2 * b * (h * h + h)  # pooler + one logit per choice
    return float(total)


def weight_bytes(arch: ArchSpec, bytes_per_param: int) -> int:
    """Bytes every forward must read at least once: all non-embedding weights (embedding rows
    are gathered, a negligible share)."""
    h, f = arch.hidden, arch.ffn
    per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h  # attn, FFN, 2 layer norms
    return arch.layers * per_layer * bytes_per_param


@dataclass(frozen=True, slots=True)
class Roofline:
    flops: float
    achieved_tflops: float
    peak_tflops: float | None
    share_of_peak: float | None
    weight_bytes: int
    weight_floor_s: float | None
    over_floor: float | None  # measured time / weight-reading floor
    peak_source: str

    def to_dict(self) -> RooflineRecord:
        return {
            "flops": self.flops,
            "achieved_tflops": self.achieved_tflops,
            "peak_tflops": self.peak_tflops,
            "share_of_peak": self.share_of_peak,
            "weight_bytes": self.weight_bytes,
            "weight_floor_s": self.weight_floor_s,
            "over_floor": self.over_floor,
            "peak_source": self.peak_source,
        }


def roofline(
    flops: float,
    seconds: float,
    weights: int,
    *,
    peak_tflops: float | None,
    bandwidth_tbs: float | None,
    peak_source: str,
) -> Roofline:
    achieved = flops / seconds / 1e12
    floor = weights / (bandwidth_tbs * 1e12) if bandwidth_tbs else None
    return Roofline(
        flops=flops,
        achieved_tflops=achieved,
        peak_tflops=peak_tflops,
        share_of_peak=achieved / peak_tflops if peak_tflops else None,
        weight_bytes=weights,
        weight_floor_s=floor,
        over_floor=seconds / floor if floor else None,
        peak_source=peak_source,
    )


def energy_per_1k(joules: float, sequences: float) -> float:
    """Joules per 1,000 sequences."""
    return 1000.0 * joules / sequences if sequences else float("nan")
