"""Input batches: seeded synthetic token ids per shape (real-text workloads: :mod:`harness.inputs.textload`).

Synthetic batches use XLM-R's conventions (``<s>``=0 first, ``</s>``=2 last, ids drawn from
the non-special vocabulary) so embeddings and position ids take the same path as real text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BOS", "EOS", "PAD", "Batch", "padded_batch", "synthetic_batch"]

BOS, PAD, EOS = 0, 1, 2
_FIRST_ID = 5  # 0-3 are <s> <pad> </s> <unk>, 4 is '.' in XLM-R: start above the specials


@dataclass(frozen=True)
class Batch:
    """Token ids and attention mask, ``[B, S]`` or ``[B, choices, S]`` for multiple choice."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def sequences(self) -> int:
        return int(self.input_ids.numel() // self.input_ids.shape[-1])

    @property
    def positions(self) -> int:
        """All token positions processed, padding included."""
        return int(self.input_ids.numel())

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[-1])


def synthetic_batch(
    batch_size: int,
    seq_len: int,
    vocab: int,
    *,
    choices: int = 1,
    seed: int = 0,
    pad_rows: bool = False,
) -> Batch:
    """A seeded batch of random ids. ``pad_rows`` pads some rows to different lengths, which
    export and parity inputs need: a graph traced on an all-ones mask may drop the mask."""
    gen = torch.Generator().manual_seed(seed)
    rows = batch_size * choices
    ids = torch.randint(_FIRST_ID, vocab, (rows, seq_len), generator=gen, dtype=torch.long)
    mask = torch.ones(rows, seq_len, dtype=torch.long)
    lengths = [seq_len] * rows
    if pad_rows and seq_len > 3:
        lengths = [seq_len - (r * 7) % (seq_len - 2) for r in range(rows)]
    for r, length in enumerate(lengths):
        ids[r, 0] = BOS
        ids[r, length - 1] = EOS
        ids[r, length:] = PAD
        mask[r, length:] = 0
    if choices > 1:
        return Batch(
            ids.view(batch_size, choices, seq_len), mask.view(batch_size, choices, seq_len)
        )
    return Batch(ids, mask)


def padded_batch(rows: list[list[int]], pad_to: int, *, choices: int = 1) -> Batch:
    """Right-pad token id lists (already with ``<s>``/``</s>``) to ``pad_to``."""
    ids = torch.full((len(rows), pad_to), PAD, dtype=torch.long)
    mask = torch.zeros(len(rows), pad_to, dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, : len(row)] = 1
    if choices > 1:
        ids = ids.repeat_interleave(choices, dim=0)
        mask = mask.repeat_interleave(choices, dim=0)
        return Batch(ids.view(len(rows), choices, pad_to), mask.view(len(rows), choices, pad_to))
    return Batch(ids, mask)
