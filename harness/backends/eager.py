"""PyTorch eager under ``inference_mode`` with SDPA attention (transformers' default here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import BackendContext, validate_options

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch


def torch_sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def torch_dtype(name: str) -> torch.dtype:
    """``tf32`` computes in float32 storage with TF32 matmuls (enabled by the CUDA backends)."""
    return {
        "float32": torch.float32,
        "tf32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }[name]


def cuda_unavailable(device: str) -> str | None:
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    return None


class EagerBackend:
    name: ClassVar[str] = "eager"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.module: torch.nn.Module | None = None

    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {"attn_implementation": ("sdpa", "eager")}

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        return cuda_unavailable(device)

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        validate_options(cls.name, options, cls.OPTIONS)

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        precision = {}
        if self.ctx.device == "cuda":
            from ..gpu import set_precision

            precision = set_precision(self.ctx.dtype)
        self.module = ckpt.model.to(device=self.ctx.device, dtype=torch_dtype(self.ctx.dtype))
        impl = getattr(ckpt.model.model.config, "_attn_implementation", None)
        return precision | {"attn_implementation": impl, "torch_threads": torch.get_num_threads()}

    def bind(self, batch: Batch) -> Any:
        dev = self.ctx.device
        return (batch.input_ids.to(dev), batch.attention_mask.to(dev))

    def run(self, bound: Any) -> Any:
        assert self.module is not None
        with torch.inference_mode():
            return self.module(*bound)

    def sync(self) -> None:
        torch_sync(self.ctx.device)

    def output(self, result: Any) -> np.ndarray:
        return np.asarray(result.detach().float().cpu().numpy())

    def close(self) -> None:
        self.module = None
