"""What the weights are, as numbers: identity hash, size, and numerics that change CPU speed.

Two checkpoints of one architecture do the same arithmetic, but not necessarily at the same
speed: subnormal floats take a slow path on x86 CPUs without flush-to-zero, and a dtype change
changes everything. So every record carries these facts next to its timings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.records.types import WeightsInfo

__all__ = ["WeightStats", "onnx_weight_stats", "weight_stats", "zeros_and_subnormals"]


@dataclass(frozen=True, slots=True)
class WeightStats:
    sha256: str
    n_params: int
    param_bytes: int
    dtypes: tuple[str, ...]
    zero_share: float
    subnormal_share: float

    def to_record(self) -> WeightsInfo:
        return {
            "sha256": self.sha256,
            "n_params": self.n_params,
            "param_bytes": self.param_bytes,
            "dtypes": list(self.dtypes),
            "zero_share": self.zero_share,
            "subnormal_share": self.subnormal_share,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightStats:
        return cls(**(data | {"dtypes": tuple(data["dtypes"])}))


def zeros_and_subnormals(values: np.ndarray, tiny: float) -> tuple[int, int]:
    """How many of ``values`` are exactly zero, and how many are subnormal (nonzero, below the
    dtype's smallest normal ``tiny``): one definition for PyTorch and ONNX weights alike."""
    zeros = int(np.count_nonzero(values == 0))
    return zeros, int(np.count_nonzero((np.abs(values) < tiny) & (values != 0)))


def weight_stats(model: nn.Module) -> WeightStats:
    """Hash the state dict (names, dtypes, shapes, bytes) and count zeros and subnormals."""
    digest = hashlib.sha256()
    n = zeros = subnormal = nbytes = 0
    dtypes: set[str] = set()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        dtypes.add(str(t.dtype).removeprefix("torch."))
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        raw = t.view(torch.uint8) if t.dtype in (torch.bfloat16, torch.float16) else t
        digest.update(raw.numpy().tobytes())
        nbytes += t.numel() * t.element_size()
        if t.is_floating_point():
            values = t.float().numpy() if t.dtype != torch.float32 else t.numpy()
            n += values.size
            z, s = zeros_and_subnormals(values, torch.finfo(t.dtype).tiny)
            zeros, subnormal = zeros + z, subnormal + s
    params = sum(p.numel() for p in model.parameters())
    return WeightStats(
        sha256=digest.hexdigest(),
        n_params=params,
        param_bytes=nbytes,
        dtypes=tuple(sorted(dtypes)),
        zero_share=zeros / n if n else 0.0,
        subnormal_share=subnormal / n if n else 0.0,
    )


def onnx_weight_stats(path: Path) -> Any:
    """Weight facts of a given graph: a hash of its files, its initializers' sizes."""
    import onnx
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for file in sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name)):
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    model = onnx.load(str(path), load_external_data=True)
    n = nbytes = zeros = subnormal = floats = 0
    dtypes: set[str] = set()
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        dtypes.add(str(arr.dtype))
        nbytes += arr.nbytes
        if arr.dtype.kind == "f":
            floats += arr.size
            z, s = zeros_and_subnormals(arr, float(np.finfo(arr.dtype).tiny))
            zeros, subnormal = zeros + z, subnormal + s
        n += arr.size
    return WeightStats(
        sha256=digest.hexdigest(),
        n_params=n,
        param_bytes=nbytes,
        dtypes=tuple(sorted(dtypes)),
        zero_share=zeros / floats if floats else 0.0,
        subnormal_share=subnormal / floats if floats else 0.0,
    )
