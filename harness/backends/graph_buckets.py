"""CUDA graphs per shape bucket: how GPU servers serve variable traffic with graphs.

``cuda-graph`` captures one graph per exact batch shape, so it cannot serve traffic whose
shapes vary request by request. ``cuda-graph-buckets`` captures, at prepare time, one graph per
(batch, length) bucket — batches of 1, 2, 4, … up to the case's batch size, lengths of 16, 32,
64, … up to its sequence length (``buckets=pow2``; TensorRT's optimization profiles and
Triton's dynamic batcher make the same trade) — and serves each batch with the smallest bucket
that holds it: the batch is padded to the bucket (extra rows and positions masked), copied into
that graph's static inputs, the graph replayed, and the real rows and positions sliced from its
output. The copy and the slice are inside the timed call, as in a server. Capture time per
bucket is a cold cost in the record; :meth:`usage` says how much bucket padding the served
batches carried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backends.cudagraph import CudaGraphBackend
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = ["Bucket", "CudaGraphBucketsBackend", "pow2_buckets", "smallest_bucket"]

#: The shortest length bucket: below it a graph saves nothing worth a capture.
MIN_LEN = 16


@dataclass(frozen=True, order=True)
class Bucket:
    batch: int
    length: int


def pow2_buckets(max_batch: int, max_len: int) -> list[Bucket]:
    """Batches 1, 2, 4, … and lengths 16, 32, 64, …, each ladder closed by the maximum."""

    def ladder(top: int, start: int) -> list[int]:
        steps = []
        x = start
        while x < top:
            steps.append(x)
            x *= 2
        return [*steps, top]

    return [
        Bucket(b, s) for b in ladder(max_batch, 1) for s in ladder(max_len, min(MIN_LEN, max_len))
    ]


def smallest_bucket(buckets: list[Bucket], batch: int, length: int) -> Bucket:
    """The bucket of fewest positions that holds a ``batch`` × ``length`` batch."""
    fits = [b for b in buckets if b.batch >= batch and b.length >= length]
    if not fits:
        top = max(buckets, key=lambda b: b.batch * b.length)
        raise HarnessError(
            f"a {batch} x {length} batch is larger than the largest graph bucket "
            f"({top.batch} x {top.length}): raise the case's batch size or sequence length"
        )
    return min(fits, key=lambda b: (b.batch * b.length, b.length))


class CudaGraphBucketsBackend(CudaGraphBackend):
    name: ClassVar[str] = "cuda-graph-buckets"
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = CudaGraphBackend.OPTIONS | {
        "buckets": ("pow2",),
    }

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        #: Bucket → (graph, static ids, static mask, static output).
        self.by_bucket: dict[Bucket, tuple[Any, torch.Tensor, torch.Tensor, Any]] = {}
        self.head = "encoder"
        #: Real tokens, the batches' own positions and the buckets' positions, of every batch
        #: bound so far.
        self.real_positions = 0
        self.batch_positions = 0
        self.bucket_positions = 0

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        if ckpt.spec.head == "multiple-choice":
            raise HarnessError(f"{self.name}: multiple-choice inputs are not bucketed")
        info = super().prepare(ckpt, example)
        self.head = ckpt.spec.head
        rows, length = int(example.input_ids.shape[0]), int(example.input_ids.shape[-1])
        buckets = pow2_buckets(rows, length)
        capture_s = {}
        for bucket in buckets:
            ids = torch.ones(bucket.batch, bucket.length, dtype=torch.long, device=self.ctx.device)
            mask = torch.ones_like(ids)
            start = time.perf_counter()
            graph, out = self.capture(ids, mask)
            capture_s[f"{bucket.batch}x{bucket.length}"] = time.perf_counter() - start
            self.by_bucket[bucket] = (graph, ids, mask, out)
        return info | {
            "mode": "one graph per (batch, length) bucket, captured at prepare; each batch "
            "padded to the smallest bucket that holds it",
            "buckets": [f"{b.batch}x{b.length}" for b in buckets],
            "bucket_capture_s": capture_s,
            "capture_s_total": sum(capture_s.values()),
        }

    def bind(self, batch: Batch) -> Any:
        ids, mask = batch.input_ids, batch.attention_mask
        rows, length = int(ids.shape[0]), int(ids.shape[-1])
        bucket = smallest_bucket(list(self.by_bucket), rows, length)
        self.real_positions += int(mask.sum())
        self.batch_positions += rows * length
        self.bucket_positions += bucket.batch * bucket.length
        dev = self.ctx.device
        padded_ids = torch.ones(bucket.batch, bucket.length, dtype=ids.dtype)  # XLM-R's <pad>
        padded_mask = torch.zeros(bucket.batch, bucket.length, dtype=mask.dtype)
        padded_ids[:rows, :length] = ids
        padded_mask[:rows, :length] = mask
        # Padding rows attend to one position, so no row's softmax runs over nothing.
        padded_mask[rows:, 0] = 1
        return (bucket, padded_ids.to(dev), padded_mask.to(dev), rows, length)

    def run(self, bound: Any) -> Any:
        bucket, ids, mask, rows, length = bound
        graph, static_ids, static_mask, out = self.by_bucket[bucket]
        static_ids.copy_(ids)
        static_mask.copy_(mask)
        graph.replay()
        if self.head == "question-answering":
            return out[:rows, :, :length]
        if self.head == "token-classification":
            return out[:rows, :length]
        return out[:rows]

    def reset_usage(self) -> None:
        self.real_positions = self.batch_positions = self.bucket_positions = 0

    def usage(self) -> dict[str, float]:
        """Of the positions the graphs computed: the share that was padding in all, and the
        share the buckets added beyond each batch's own padding."""
        served = max(self.bucket_positions, 1)
        return {
            "real_positions": float(self.real_positions),
            "bucket_positions": float(self.bucket_positions),
            "padding_share": 1 - self.real_positions / served,
            "bucket_padding_share": 1 - self.batch_positions / served,
        }

    def close(self) -> None:
        self.by_bucket.clear()
        super().close()
