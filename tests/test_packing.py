"""Unpadded execution and the padding ceiling: packed sentences give the padded model's
outputs, bucketing spans the pool, and real-text records say their share of the ceiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.backends import BackendContext, make_backend
from harness.backends.packing import pack_batch, plan_rows
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.inputs.textload import bucket_batches, ceiling_batches
from harness.inputs.workloads import padded_batch
from harness.records.results import load_run
from harness.spec.config import ArchSpec, MeasureSpec, ModelSpec
from harness.spec.sweep import SweepSpec

TINY = ArchSpec(layers=2, hidden=32, ffn=64, heads=4, vocab=500, max_positions=130)


def test_first_fit_decreasing_rows() -> None:
    rows = plan_rows([10, 3, 7, 2, 5, 10])
    assert sorted(i for r in rows for i in r) == list(range(6))
    assert all(sum([10, 3, 7, 2, 5, 10][i] for i in r) <= 10 for r in rows)
    assert len(rows) == 4  # 10 | 10 | 7+3 | 5+2


def test_packed_batch_layout() -> None:
    batch = padded_batch([[0, 7, 8, 9, 10, 2], [0, 9, 2], [0, 2]], 6)
    packed = pack_batch(batch.input_ids, batch.attention_mask)
    assert packed.rows == 2 and packed.positions == 12  # [6] and [3 + 2], not 3 rows of 6
    assert packed.pool.sum(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    keep = packed.keep[:, 0]
    # No token attends across sentences, and every query row has at least one key.
    assert bool(keep.any(dim=-1).all())
    assert packed.input_ids[1].tolist() == [0, 9, 2, 0, 2, 1]
    assert not bool(keep[1, 0, 3]) and bool(keep[1, 3, 4])  # no attention across sentences
    assert packed.position_ids[1].tolist() == [2, 3, 4, 2, 3, 1]


@pytest.mark.parametrize("mode", ["true", "varlen"])
@pytest.mark.parametrize("head", ["encoder", "sequence-classification"])
def test_packed_eager_matches_padded_eager(head: str, mode: str, cache_dir: Path) -> None:
    spec = ModelSpec(name=f"pack-{head}", source="random-init", head=head, arch=TINY)
    ckpt = load_checkpoint(spec, cache_dir)
    rng = np.random.default_rng(0)
    rows = [[0, *rng.integers(5, 500, n).tolist(), 2] for n in (3, 17, 9, 1, 30, 12, 5, 22)]
    batch = padded_batch(rows, max(len(r) for r in rows))
    with torch.inference_mode():
        reference = ckpt.model(batch.input_ids, batch.attention_mask).numpy()
    b = make_backend("eager", BackendContext("cpu", "float32", 1, cache_dir, (("pack", mode),)))
    info = b.prepare(ckpt, batch)
    got = b.output(b.run(b.bind(batch)))
    assert info["pack"] is True and ("varlen" in info["packing"]) == (mode == "varlen")
    np.testing.assert_allclose(got, reference, atol=2e-5, rtol=1e-4)


def test_packing_refuses_heads_it_cannot_gather(cache_dir: Path) -> None:
    spec = ModelSpec(name="pack-qa", source="random-init", head="question-answering", arch=TINY)
    b = make_backend("eager", BackendContext("cpu", "float32", 1, cache_dir, (("pack", "true"),)))
    with pytest.raises(HarnessError, match="not packable"):
        b.prepare(load_checkpoint(spec, cache_dir), padded_batch([[0, 2]], 2))


def test_buckets_span_the_whole_pool() -> None:
    rows = [[0] + [5] * n + [2] for n in range(1, 101)]  # lengths 3..102
    batches, buckets = bucket_batches(rows, 10, 4)
    assert [b["bucket"] for b in buckets] == [0, 3, 6, 9]
    assert buckets[0]["min_len"] == 3 and buckets[-1]["max_len"] == 102
    assert buckets[0]["pad_share"] == pytest.approx(1 - 75 / 120)  # lengths 3..12 padded to 12
    assert buckets[-1]["pad_share"] == pytest.approx(1 - 975 / 1020)
    assert [batch.seq_len for batch in batches] == [12, 42, 72, 102]


def test_ceiling_is_the_real_tokens_at_their_mean_length() -> None:
    batch = padded_batch([[0, 5, 2], [0, 5, 5, 5, 5, 5, 5, 2]], 8)
    (ceiling,) = ceiling_batches([batch], 500)
    assert tuple(ceiling.input_ids.shape) == (2, round(11 / 2))
    assert int(ceiling.attention_mask.sum()) == ceiling.positions


def test_real_text_records_their_share_of_the_ceiling(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(8,),
        seq_lens=(16,),
        synthetic=False,
        languages=("tha", "deu"),
        policies=("fixed", "bucket"),
        lang_max_len=64,
        lang_batches=2,
        isolate=False,
        backend_options={"eager": {"pack": "true"}},
        measure=MeasureSpec(min_iters=6, max_time_s=0.2),
    )
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir, corpus=small_corpus)))
    assert len(run.records) == 4
    for rec in run.records:
        assert rec.status == "ok", rec.message
        share = rec.throughput["share_of_ceiling"]
        assert 0 < share < 5 and rec.throughput["ceiling_real_tokens_per_s"] > 0
        assert len(rec.workload["ceiling"]["p50_by_batch_s"]) == 2
        real = rec.parity["real_text"]  # packed outputs against padded eager, real sentences
        assert real["ok"] and real["max_abs_diff"] <= real["tolerance"] and real["batches"] == 2
    bucketed = [r for r in run.records if r.case["policy"] == "bucket"]
    assert all(len(r.workload["buckets"]) == 2 for r in bucketed)


def test_varlen_stream_layout() -> None:
    from harness.backends.packing import varlen_batch

    batch = padded_batch([[0, 7, 2], [0, 9, 9, 9, 2], [0, 2]], 5)
    v = varlen_batch(batch.input_ids, batch.attention_mask)
    assert v.input_ids.tolist() == [[0, 7, 2, 0, 9, 9, 9, 2, 0, 2]]  # no pad computed
    assert v.offsets.tolist() == [0, 3, 8, 10] and v.lengths.tolist() == [3, 5, 2]
    assert v.position_ids.tolist() == [[2, 3, 4, 2, 3, 4, 5, 6, 2, 3]]
    assert v.segment.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
