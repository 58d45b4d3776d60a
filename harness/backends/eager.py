"""PyTorch eager under ``inference_mode`` with SDPA attention (transformers' default here;
``attn_implementation=eager`` is a load-time option, see :func:`harness.checkpoints.load_checkpoint`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .torchbase import TorchBackend, cuda_unavailable, torch_dtype, torch_sync

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch

__all__ = ["EagerBackend", "cuda_unavailable", "torch_dtype", "torch_sync"]


class EagerBackend(TorchBackend):
    name: ClassVar[str] = "eager"
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = TorchBackend.OPTIONS | {
        "attn_implementation": ("sdpa", "eager")
    }

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        self.module, precision = self.place(ckpt)
        impl = getattr(ckpt.model.model.config, "_attn_implementation", None)
        return (
            precision
            | self.variant_info()
            | {
                "attn_implementation": impl,
                "torch_threads": torch.get_num_threads(),
            }
        )
