"""``torch.compile`` (Inductor). Compilation happens on the first call at each shape: the
runner's cold ``first_call_s`` holds it, the warmup absorbs autotuning, and only steady-state
calls are timed. The mode is an option and is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import BackendContext, validate_options
from .eager import cuda_unavailable, torch_dtype, torch_sync

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch


class CompileBackend:
    name: ClassVar[str] = "compile"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        "dynamic": ("false", "true"),
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

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.ctx.device == "cuda":
            from ..gpu import set_precision

            info |= set_precision(self.ctx.dtype)
        model = ckpt.model.to(device=self.ctx.device, dtype=torch_dtype(self.ctx.dtype)).eval()
        mode = self.ctx.option("mode", "default")
        dynamic = self.ctx.option("dynamic", "false") == "true"
        # One compiled graph per static shape: lift dynamo's default limit of 8 recompiles,
        # past which it would silently fall back to eager for the remaining shapes.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        self.module = torch.compile(model, mode=mode, dynamic=dynamic)
        return info | {"mode": mode, "dynamic": dynamic, "compile": "on first call per shape"}

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
