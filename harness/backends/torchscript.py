"""TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze``.

Tracing records one path through Python, so the example batch has padded rows (a graph
traced on an all-ones mask may drop the mask); the runner's parity check then runs a batch
of another shape, which proves the traced graph really has dynamic batch and sequence axes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import BackendContext, validate_options
from .eager import cuda_unavailable, torch_dtype, torch_sync

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch


class TorchScriptBackend:
    name: ClassVar[str] = "torchscript"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.module: Any = None

    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {"freeze": ("true", "false")}

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
        model = ckpt.model.to(device=self.ctx.device, dtype=torch_dtype(self.ctx.dtype))
        args = (example.input_ids.to(self.ctx.device), example.attention_mask.to(self.ctx.device))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks
            traced = torch.jit.trace(model, args, check_trace=False).eval()  # type: ignore[no-untyped-call]
            freeze = self.ctx.option("freeze", "true") == "true"
            self.module = torch.jit.freeze(traced) if freeze else traced
        mode = "trace+freeze" if freeze else "trace"
        return precision | {"mode": mode, "example_shape": list(example.input_ids.shape)}

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
