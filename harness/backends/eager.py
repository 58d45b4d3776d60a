"""PyTorch eager under ``inference_mode`` with SDPA attention (transformers' default here;
``attn_implementation=eager`` is a load-time option, see :func:`harness.checkpoints.load.load_checkpoint`).

Option ``pack=true`` runs unpadded: each bound batch is packed into rows with a block-diagonal
attention mask (:mod:`harness.backends.packing`), so no padded position is computed;
``pack=varlen`` runs it as one token stream with attention per sentence over jagged nested
tensors (variable-length kernels on CUDA)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backends.torchbase import TorchBackend, cuda_unavailable, torch_dtype, torch_sync

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["EagerBackend", "cuda_unavailable", "torch_dtype", "torch_sync"]


class EagerBackend(TorchBackend):
    name: ClassVar[str] = "eager"
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = TorchBackend.OPTIONS | {
        "attn_implementation": ("sdpa", "eager"),
        "pack": ("false", "true", "varlen"),
    }

    @property
    def packed(self) -> bool:
        return self.ctx.option("pack", "false") != "false"

    @property
    def varlen(self) -> bool:
        return self.ctx.option("pack", "false") == "varlen"

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        self.module, precision = self.place(ckpt)
        impl = getattr(ckpt.torch_model().model.config, "_attn_implementation", None)
        info = precision | self.variant_info()
        if self.varlen:
            from harness.backends.packing import VarlenModel

            self.module = VarlenModel(self.module).eval()
            info |= {
                "pack": True,
                "packing": "varlen: the batch's real tokens as one stream; attention per "
                "sentence over jagged nested tensors (SDPA); positions restart per sentence",
            }
        elif self.packed:
            from harness.backends.packing import PackedModel

            self.module = PackedModel(self.module).eval()
            info |= {
                "pack": True,
                "packing": "first-fit-decreasing rows no longer than the batch's longest "
                "sentence; block-diagonal attention; positions restart per sentence",
            }
        return info | {"attn_implementation": impl, "torch_threads": torch.get_num_threads()}

    def bind(self, batch: Batch) -> Any:
        if not self.packed:
            return super().bind(batch)
        from dataclasses import fields, replace

        from harness.backends.packing import pack_batch, varlen_batch

        plan = varlen_batch if self.varlen else pack_batch
        packed: Any = plan(batch.input_ids, batch.attention_mask)
        dev = self.ctx.device
        moved = {f.name: getattr(packed, f.name) for f in fields(packed)}
        moved = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in moved.items()}
        return (replace(packed, **moved),)
