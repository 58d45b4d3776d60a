"""TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze``.

Tracing records one path through Python, so the example batch has padded rows (a graph
traced on an all-ones mask may drop the mask); the runner's parity check then runs a batch
of another shape, which proves the traced graph really has dynamic batch and sequence axes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backends.torchbase import TorchBackend

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch


class TorchScriptBackend(TorchBackend):
    name: ClassVar[str] = "torchscript"
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = TorchBackend.OPTIONS | {
        "freeze": ("true", "false")
    }

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        model, precision = self.place(ckpt)
        args = self.bind(example)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks
            traced = torch.jit.trace(model, args, check_trace=False).eval()  # type: ignore[no-untyped-call]
            freeze = self.ctx.option("freeze", "true") == "true"
            self.module = torch.jit.freeze(traced) if freeze else traced
        mode = "trace+freeze" if freeze else "trace"
        return (
            precision
            | self.variant_info()
            | {
                "mode": mode,
                "example_shape": list(example.input_ids.shape),
            }
        )
