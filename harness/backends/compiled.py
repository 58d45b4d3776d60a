"""``torch.compile`` (Inductor). Compilation happens on the first call at each shape: the
runner's cold ``first_call_s`` holds it, the warmup absorbs autotuning, and only steady-state
calls are timed. The mode is an option and is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backends.torchbase import TorchBackend

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch


class CompileBackend(TorchBackend):
    name: ClassVar[str] = "compile"
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = TorchBackend.OPTIONS | {
        "mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        "dynamic": ("false", "true"),
    }

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        model, precision = self.place(ckpt)
        mode = self.ctx.option("mode", "default")
        dynamic = self.ctx.option("dynamic", "false") == "true"
        # One compiled graph per static shape: lift dynamo's default limit of 8 recompiles,
        # past which it would silently fall back to eager for the remaining shapes.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        self.module = torch.compile(model, mode=mode, dynamic=dynamic)
        return (
            precision
            | self.variant_info()
            | {
                "mode": mode,
                "dynamic": dynamic,
                "compile": "on first call per shape",
            }
        )
