"""One forward signature for every head, so every backend runs and exports the same module.

Each backend sees ``forward(input_ids, attention_mask) -> Tensor``. The multiple-choice head
takes ``[batch, choices, seq]`` inputs and runs the encoder once per ending, which is why
HellaSwag-style checkpoints cost ``choices`` times more per example.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ServingModel", "build_hf_model", "hf_model_class"]


def hf_model_class(head: str) -> Any:
    import transformers as tf

    return {
        "encoder": tf.XLMRobertaModel,
        "sequence-classification": tf.XLMRobertaForSequenceClassification,
        "question-answering": tf.XLMRobertaForQuestionAnswering,
        "token-classification": tf.XLMRobertaForTokenClassification,
        "multiple-choice": tf.XLMRobertaForMultipleChoice,
    }[head]


def build_hf_model(head: str, config: Any) -> nn.Module:
    cls = hf_model_class(head)
    if head == "encoder":
        # Retrieval (XTREME's Tatoeba/BUCC) mean-pools hidden states; the pooler is dead weight.
        return cls(config, add_pooling_layer=False)  # type: ignore[no-any-return]
    return cls(config)  # type: ignore[no-any-return]


class ServingModel(nn.Module):
    """An XLM-R model plus its head, returning one tensor.

    Outputs: encoder → mean-pooled ``[B, H]``; sequence classification → ``[B, labels]``;
    question answering → stacked start/end logits ``[B, 2, S]``; token classification →
    ``[B, S, labels]``; multiple choice → ``[B, choices]``.
    """

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: Any = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.head == "encoder":
            hidden: torch.Tensor = out.last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.head == "question-answering":
            return torch.stack([out.start_logits, out.end_logits], dim=1)
        logits: torch.Tensor = out.logits
        return logits
