"""Fused-projection serving module: Q, K and V as one GEMM per layer.

At small batch a GPU encoder is bound by kernel launches, not arithmetic (XLM-R large at
batch 1 × 128 launches ~300 kernels for ~0.13 ms of weight reading). Fusing the three input
projections of each attention block into one ``[3H, H]`` matmul removes two launches and two
reads of the activations per layer; everything else is the same arithmetic as transformers'
XLM-R (embeddings module reused as is, SDPA attention, the same LayerNorms, activation and
heads), so the runner's parity check against eager holds it to the same tolerance.

The module reads the weights of a built :class:`~harness.checkpoints.heads.ServingModel` by their
transformers attribute names (``attention.self.query`` …); a layout it does not recognise is
one clear :class:`HarnessError`, never a silently different model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import HarnessError

__all__ = ["ExportModel", "FusedQKVModel", "fuse_qkv"]


def _get(module: Any, path: str) -> Any:
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise HarnessError(
                f"fuse_qkv: this transformers version's XLM-R has no {path!r}; run without fuse_qkv"
            )
    return obj


class _Block(nn.Module):
    """The parts of a transformers XLM-R layer both rewrites share (the same weights):
    attention output projection, the two LayerNorms and the feed-forward."""

    attn_out: Any
    attn_norm: Any
    ffn_in: Any
    act: Any
    ffn_out: Any
    ffn_norm: Any

    def take_block(self, layer: nn.Module) -> None:
        self.attn_out = _get(layer, "attention.output.dense")
        self.attn_norm = _get(layer, "attention.output.LayerNorm")
        self.ffn_in = _get(layer, "intermediate.dense")
        self.act = _get(layer, "intermediate.intermediate_act_fn")
        self.ffn_out = _get(layer, "output.dense")
        self.ffn_norm = _get(layer, "output.LayerNorm")


class _FusedLayer(_Block):
    def __init__(self, layer: nn.Module, heads: int) -> None:
        super().__init__()
        q, k, v = (_get(layer, f"attention.self.{n}") for n in ("query", "key", "value"))
        self.heads = heads
        self.qkv = nn.Linear(q.in_features, 3 * q.out_features, bias=True)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([q.weight, k.weight, v.weight], dim=0))
            self.qkv.bias.copy_(torch.cat([q.bias, k.bias, v.bias], dim=0))
        self.qkv.to(device=q.weight.device, dtype=q.weight.dtype)
        self.take_block(layer)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep)
        ctx = ctx.transpose(1, 2).reshape(b, s, h)
        x = self.attn_norm(self.attn_out(ctx) + x)
        return self.ffn_norm(self.ffn_out(self.act(self.ffn_in(x))) + x)  # type: ignore[no-any-return]


class _ClassicLayer(_Block):
    """The attention block written as BERT's original graph: separate Q/K/V projections,
    ``QKᵀ/√d + (1 − mask)·(−10000)``, softmax, ``·V``. ONNX Runtime's transformer optimizer
    recognises exactly this pattern and fuses it into one ``Attention`` node, whatever
    transformers version built the weights (its own export of transformers-5 models fuses
    none)."""

    def __init__(self, layer: nn.Module, heads: int) -> None:
        super().__init__()
        self.q, self.k, self.v = (
            _get(layer, f"attention.self.{n}") for n in ("query", "key", "value")
        )
        self.heads = heads
        self.take_block(layer)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        d = h // self.heads
        q = self.q(x).view(b, s, self.heads, d).permute(0, 2, 1, 3)
        k = self.k(x).view(b, s, self.heads, d).permute(0, 2, 3, 1)
        v = self.v(x).view(b, s, self.heads, d).permute(0, 2, 1, 3)
        scores = torch.matmul(q, k) / math.sqrt(d) + additive_mask
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).reshape(b, s, h)
        x = self.attn_norm(self.attn_out(ctx) + x)
        return self.ffn_norm(self.ffn_out(self.act(self.ffn_in(x))) + x)  # type: ignore[no-any-return]


class FusedQKVModel(nn.Module):
    """Same inputs, outputs and heads as :class:`~harness.checkpoints.heads.ServingModel`."""

    def __init__(self, serving: nn.Module) -> None:
        super().__init__()
        hf: Any = serving.model
        self.head: str = serving.head  # type: ignore[assignment]
        self.hf = hf
        base = hf if self.head == "encoder" else _get(hf, "roberta")
        self.embeddings = _get(base, "embeddings")
        heads = int(_get(base, "config.num_attention_heads"))
        layers = _get(base, "encoder.layer")
        self.layers = nn.ModuleList(self.make_layer(layer, heads) for layer in layers)
        self.pooler: Any = getattr(base, "pooler", None)

    def make_layer(self, layer: nn.Module, heads: int) -> nn.Module:
        return _FusedLayer(layer, heads)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask[:, None, None, :].bool()
        return self.encode_with(self.embeddings(input_ids=input_ids), keep)

    def encode_with(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The layers on embedded tokens ``x`` with a boolean attention mask ``keep`` that
        broadcasts to ``[rows, heads, queries, keys]`` (per key, or a full block mask)."""
        for layer in self.layers:
            x = layer(x, keep)
        return x

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        head = self.head
        if head == "multiple-choice":
            choices = input_ids.shape[1]
            ids, mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1)
            hidden = self.encode(ids, mask)
            logits = self.hf.classifier(self.hf.dropout(self.pooler(hidden)))
            return logits.view(-1, choices)  # type: ignore[no-any-return]
        hidden = self.encode(input_ids, attention_mask)
        if head == "encoder":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if head == "sequence-classification":
            return self.hf.classifier(hidden)  # type: ignore[no-any-return]
        if head == "question-answering":
            start, end = self.hf.qa_outputs(hidden).split(1, dim=-1)
            return torch.stack([start.squeeze(-1), end.squeeze(-1)], dim=1)
        return self.hf.classifier(self.hf.dropout(hidden))  # type: ignore[no-any-return]


class ExportModel(FusedQKVModel):
    """What the harness exports to ONNX: the checkpoint's own weights in BERT's classic
    attention graph (see :class:`_ClassicLayer`), so the export does not depend on how the
    installed transformers writes attention."""

    def make_layer(self, layer: nn.Module, heads: int) -> nn.Module:
        return _ClassicLayer(layer, heads)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids=input_ids)
        additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, additive)
        return x  # type: ignore[no-any-return]


def fuse_qkv(serving: nn.Module) -> nn.Module:
    """A fused-projection copy of ``serving`` sharing its other weights (eval mode)."""
    return FusedQKVModel(serving).eval()
