"""Unpadded execution: several sentences packed into one row, attending only to themselves.

Padding a batch to its longest sentence computes positions that carry nothing; for real
multilingual text that is a quarter to a half of the work (``README``, "What languages
cost"). Packing removes it: sentences are placed into rows first-fit-decreasing, each row no
longer than the batch's longest sentence (so attention never gets longer than padding would
make it), with a block-diagonal attention mask, position ids restarting at every sentence,
and the pooled output (or the first-token logits) gathered per sentence. The arithmetic per
sentence is that of the padded model, so the runner's parity check against padded eager holds
it to the float32 tolerance.

The plan is computed from the attention mask when a batch is bound, outside the timed call.

``pack=varlen`` goes further: every sentence of the batch in one token stream, the projections
and the feed-forward over the stream, and attention per sentence over jagged nested tensors
(``torch.nested.nested_tensor_from_jagged`` into SDPA: on CUDA its flash / memory-efficient
variable-length kernels), so no position attends across sentences and no block-diagonal mask
is built — the packing GPU servers use (:class:`VarlenModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.backends.fused import FusedQKVModel
from harness.errors import HarnessError

__all__ = [
    "PACKABLE_HEADS",
    "PackedBatch",
    "PackedModel",
    "VarlenBatch",
    "VarlenModel",
    "pack_batch",
    "plan_rows",
    "varlen_batch",
]

PACKABLE_HEADS = ("encoder", "sequence-classification")
_PAD_ID, _PAD_POSITION, _FIRST_POSITION = 1, 1, 2  # XLM-R: <pad> = 1, positions start at 2


def plan_rows(lengths: list[int]) -> list[list[int]]:
    """Sentence indices per row, first-fit-decreasing into rows of the longest length."""
    capacity = max(lengths)
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, used in enumerate(fill):
            if used + lengths[i] <= capacity:
                rows[r].append(i)
                fill[r] += lengths[i]
                break
        else:
            rows.append([i])
            fill.append(lengths[i])
    return rows


@dataclass(frozen=True)
class PackedBatch:
    input_ids: torch.Tensor  # [rows, S]
    position_ids: torch.Tensor  # [rows, S]
    keep: torch.Tensor  # [rows, 1, S, S] block-diagonal
    pool: torch.Tensor  # [sentences, rows * S]: mean over each sentence's tokens
    first: torch.Tensor  # [sentences]: flat index of each sentence's <s>
    sentences: int
    rows: int

    @property
    def positions(self) -> int:
        return int(self.input_ids.numel())


def pack_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> PackedBatch:
    """Pack a right-padded ``[B, S]`` batch (see :func:`plan_rows`)."""
    if input_ids.dim() != 2:
        raise HarnessError("packing takes [batch, seq] inputs (not multiple choice)")
    lengths = [int(n) for n in attention_mask.sum(dim=1)]
    plan = plan_rows(lengths)
    width = max(sum(lengths[i] for i in row) for row in plan)
    n_rows = len(plan)
    ids = torch.full((n_rows, width), _PAD_ID, dtype=input_ids.dtype)
    pos = torch.full((n_rows, width), _PAD_POSITION, dtype=torch.long)
    segment = torch.full((n_rows, width), -1, dtype=torch.long)
    pool = torch.zeros(len(lengths), n_rows * width)
    first = torch.zeros(len(lengths), dtype=torch.long)
    for r, row in enumerate(plan):
        start = 0
        for i in row:
            n = lengths[i]
            ids[r, start : start + n] = input_ids[i, :n]
            pos[r, start : start + n] = torch.arange(_FIRST_POSITION, _FIRST_POSITION + n)
            segment[r, start : start + n] = i
            pool[i, r * width + start : r * width + start + n] = 1.0 / n
            first[i] = r * width + start
            start += n
    same = segment[:, :, None] == segment[:, None, :]
    # Padding queries attend to themselves only (their output is never read), so no row of
    # the mask is empty and softmax stays finite.
    keep = (same & (segment[:, :, None] >= 0)) | torch.eye(width, dtype=torch.bool)[None]
    return PackedBatch(ids, pos, keep[:, None], pool, first, len(lengths), n_rows)


class PackedModel(nn.Module):
    """Runs packed batches through the fused-projection layers; returns what the padded
    :class:`~harness.checkpoints.heads.ServingModel` would (pooled ``[B, H]`` or logits ``[B, labels]``)."""

    def __init__(self, serving: nn.Module) -> None:
        super().__init__()
        head = str(serving.head)
        if head not in PACKABLE_HEADS:
            raise HarnessError(
                f"pack: head {head!r} is not packable (packable: {', '.join(PACKABLE_HEADS)})"
            )
        self.fused = FusedQKVModel(serving).eval()
        self.head = head

    def forward(self, packed: PackedBatch) -> torch.Tensor:
        f = self.fused
        x = f.embeddings(input_ids=packed.input_ids, position_ids=packed.position_ids)
        hidden = f.encode_with(x, packed.keep)
        flat = hidden.reshape(-1, hidden.shape[-1])
        if self.head == "encoder":
            return packed.pool.to(flat.dtype) @ flat
        cls = flat[packed.first][:, None, :]  # the classifier reads token 0 of each sentence
        out: Any = f.hf.classifier(cls)
        return out  # type: ignore[no-any-return]


@dataclass(frozen=True)
class VarlenBatch:
    input_ids: torch.Tensor  # [1, T]: every sentence's tokens, one after another
    position_ids: torch.Tensor  # [1, T], restarting per sentence
    offsets: torch.Tensor  # [B + 1]: where each sentence starts in the stream
    segment: torch.Tensor  # [T]: the sentence of each token
    lengths: torch.Tensor  # [B]
    sentences: int

    @property
    def positions(self) -> int:
        return int(self.input_ids.numel())


def varlen_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> VarlenBatch:
    """A right-padded ``[B, S]`` batch as one stream of its real tokens."""
    if input_ids.dim() != 2:
        raise HarnessError("packing takes [batch, seq] inputs (not multiple choice)")
    lengths = attention_mask.sum(dim=1).to(torch.long)
    keep = attention_mask.bool()
    ids = input_ids[keep][None]
    positions = torch.cat(
        [torch.arange(_FIRST_POSITION, _FIRST_POSITION + int(n)) for n in lengths]
    )
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)
    segment = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    return VarlenBatch(ids, positions[None], offsets, segment, lengths, len(lengths))


class VarlenModel(PackedModel):
    """Packed as one token stream; attention per sentence through jagged nested tensors."""

    def forward(self, packed: VarlenBatch) -> torch.Tensor:  # type: ignore[override]
        f = self.fused
        x = f.embeddings(input_ids=packed.input_ids, position_ids=packed.position_ids)[0]
        offsets = packed.offsets
        layer: Any
        for layer in f.layers:
            t, h = x.shape
            # [3, T, heads, d], contiguous: jagged SDPA needs each of q, k, v contiguous.
            qkv = layer.qkv(x).view(t, 3, layer.heads, h // layer.heads).transpose(0, 1)
            qkv = qkv.contiguous()
            q, k, v = (
                torch.nested.nested_tensor_from_jagged(qkv[i], offsets).transpose(1, 2)
                for i in range(3)
            )
            ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).values()
            x = layer.attn_norm(layer.attn_out(ctx.reshape(t, h)) + x)
            x = layer.ffn_norm(layer.ffn_out(layer.act(layer.ffn_in(x))) + x)
        if self.head == "encoder":
            sums = torch.zeros(packed.sentences, x.shape[-1], dtype=x.dtype, device=x.device)
            sums.index_add_(0, packed.segment, x)
            return sums / packed.lengths[:, None].to(x.dtype)
        cls = x[offsets[:-1]][:, None, :]  # the classifier reads token 0 of each sentence
        out: Any = f.hf.classifier(cls)
        return out  # type: ignore[no-any-return]
