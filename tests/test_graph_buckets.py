"""Graphs per shape bucket, on the CPU with a stand-in for CUDA graph capture: the buckets, the
choice of bucket, and outputs equal to eager's on the real rows and positions for every head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.backends import BackendContext
from harness.backends.graph_buckets import (
    Bucket,
    CudaGraphBucketsBackend,
    pow2_buckets,
    smallest_bucket,
)
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.inputs.workloads import synthetic_batch
from harness.spec.config import ArchSpec, ModelSpec

TINY = ArchSpec(layers=2, hidden=32, ffn=64, heads=4, vocab=500, max_positions=130)


class _Replay:
    """What a captured graph does: run the module on the static inputs into the static output."""

    def __init__(self, module: Any, ids: torch.Tensor, mask: torch.Tensor, out: torch.Tensor):
        self.module, self.ids, self.mask, self.out = module, ids, mask, out

    def replay(self) -> None:
        with torch.inference_mode():
            self.out.copy_(self.module(self.ids, self.mask))


class CpuBuckets(CudaGraphBucketsBackend):
    """The bucket logic with capture replaced by a replay of the module (no CUDA here)."""

    def new_pool(self) -> Any:
        return None

    def capture(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[Any, Any]:
        with torch.inference_mode():
            out = self.module(ids, mask).clone()
        return _Replay(self.module, ids, mask, out), out


def test_buckets_close_each_ladder_with_the_maximum() -> None:
    assert pow2_buckets(8, 128) == [Bucket(b, s) for b in (1, 2, 4, 8) for s in (16, 32, 64, 128)]
    assert [b.length for b in pow2_buckets(1, 100)] == [16, 32, 64, 100]
    assert pow2_buckets(3, 8) == [Bucket(1, 8), Bucket(2, 8), Bucket(3, 8)]


def test_the_smallest_bucket_that_holds_the_batch() -> None:
    buckets = pow2_buckets(8, 128)
    assert smallest_bucket(buckets, 3, 40) == Bucket(4, 64)
    assert smallest_bucket(buckets, 1, 16) == Bucket(1, 16)
    assert smallest_bucket(buckets, 8, 128) == Bucket(8, 128)
    with pytest.raises(HarnessError, match="larger than the largest graph bucket"):
        smallest_bucket(buckets, 9, 16)


@pytest.mark.parametrize(
    "head", ["encoder", "sequence-classification", "question-answering", "token-classification"]
)
def test_outputs_equal_eager_on_the_real_rows_and_positions(head: str, cache_dir: Path) -> None:
    spec = ModelSpec(name=f"gb-{head}", source="random-init", head=head, arch=TINY, num_labels=5)
    ckpt = load_checkpoint(spec, cache_dir)
    backend = CpuBuckets(BackendContext("cpu", "float32", 1, cache_dir))
    info = backend.prepare(ckpt, synthetic_batch(8, 64, TINY.vocab, seed=1))
    assert info["buckets"] == [f"{b}x{s}" for b in (1, 2, 4, 8) for s in (16, 32, 64)]
    assert set(info["bucket_capture_s"]) == set(info["buckets"])
    for rows, length in ((3, 40), (1, 7), (8, 64), (5, 17)):
        batch = synthetic_batch(rows, length, TINY.vocab, seed=rows, pad_rows=True)
        with torch.inference_mode():
            want = ckpt.model(batch.input_ids, batch.attention_mask).numpy()
        got = backend.output(backend.run(backend.bind(batch)))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    usage = backend.usage()
    # (3x40 → 4x64) + (1x7 → 1x16) + (8x64 → 8x64) + (5x17 → 8x32): 256+16+512+256 positions,
    # 120+7+512+85 of them the batches' own.
    assert usage["bucket_positions"] == 1040
    assert usage["bucket_padding_share"] == pytest.approx(1 - 724 / 1040)
    assert usage["padding_share"] >= usage["bucket_padding_share"]
    backend.close()


def test_multiple_choice_is_refused(cache_dir: Path) -> None:
    spec = ModelSpec(name="gb-mc", source="random-init", head="multiple-choice", arch=TINY)
    ckpt = load_checkpoint(spec, cache_dir)
    backend = CpuBuckets(BackendContext("cpu", "float32", 1, cache_dir))
    with pytest.raises(HarnessError, match="multiple-choice"):
        backend.prepare(ckpt, synthetic_batch(2, 16, TINY.vocab, choices=4))


def test_serve_bench_accepts_the_bucketed_graphs_only() -> None:
    from harness.serving.spec import check_serve_backends

    check_serve_backends(("cuda-graph-buckets",))
    with pytest.raises(HarnessError, match="cannot serve arbitrary shapes"):
        check_serve_backends(("cuda-graph",))
