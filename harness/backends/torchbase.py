"""What every torch-module backend shares: placement on device and dtype, TF32 setting,
binding inputs to the device, running under ``inference_mode``, syncing and reading outputs.
Each backend (eager, TorchScript, torch.compile, CUDA graph) only says how it prepares."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from harness.backends.base import BackendContext, validate_options

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["TorchBackend", "cuda_unavailable", "torch_dtype", "torch_sync"]


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


class TorchBackend(abc.ABC):
    """Base for backends that run a torch module; subclasses implement :meth:`prepare`."""

    name: ClassVar[str] = "torch"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "tf32", "bfloat16", "float16")
    #: A torch module needs PyTorch weights; an ONNX export directory has none.
    takes_onnx_exports: ClassVar[bool] = False
    #: Options every torch backend takes; subclasses add theirs with ``TorchBackend.OPTIONS | {…}``.
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "fuse_qkv": ("false", "true"),
        # bfloat16 / float16 on a CPU is judged by accuracy: the least mean cosine it may have.
        "min_cosine": ("0.9", "0.95", "0.98", "0.99", "0.995", "0.999"),
    }

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.module: Any = None

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        return cuda_unavailable(device)

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        validate_options(cls.name, options, cls.OPTIONS)

    @classmethod
    def dtypes_on(cls, device: str) -> tuple[str, ...]:
        return cls.dtypes

    def place(self, ckpt: Checkpoint) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The model on the case's device and dtype, and the matmul precision that was set."""
        precision: dict[str, Any] = {}
        if self.ctx.device == "cuda":
            from harness.measure.gpu import set_precision

            precision = set_precision(self.ctx.dtype)
        elif self.ctx.dtype in ("bfloat16", "float16"):
            from harness.records.env import cpu_isa

            isa = cpu_isa()
            native = {"bfloat16": ("avx512_bf16", "amx_bf16"), "float16": ("amx_fp16",)}
            precision = {
                "cpu_isa": isa,
                "native_reduced_precision": any(f in isa for f in native[self.ctx.dtype]),
            }
        model: torch.nn.Module = (
            ckpt.torch_model().to(device=self.ctx.device, dtype=torch_dtype(self.ctx.dtype)).eval()
        )
        if self.ctx.option("fuse_qkv", "false") == "true":
            from harness.backends.fused import fuse_qkv

            model = fuse_qkv(model)
        return model, precision

    def variant_info(self) -> dict[str, Any]:
        """The model-rewrite options in force, for the record."""
        return {"fuse_qkv": self.ctx.option("fuse_qkv", "false") == "true"}

    @abc.abstractmethod
    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        """Load / trace / compile; each concrete backend prepares its own way."""

    def bind(self, batch: Batch) -> Any:
        dev = self.ctx.device
        return (batch.input_ids.to(dev), batch.attention_mask.to(dev))

    def run(self, bound: Any) -> Any:
        with torch.inference_mode():
            return self.module(*bound)

    def sync(self) -> None:
        torch_sync(self.ctx.device)

    def output(self, result: Any) -> np.ndarray:
        return np.asarray(result.detach().float().cpu().numpy())

    def close(self) -> None:
        self.module = None
