from __future__ import annotations

from pathlib import Path

import pytest

from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.inputs.textload import build_batches, language_stats
from harness.inputs.tokenization import train_surrogate
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec

ROWS = [[0] + [9] * (n - 2) + [2] for n in (2, 5, 3, 8)]  # lengths with <s> and </s>


def _pad_share(policy: str) -> float:
    batches = build_batches(ROWS, batch_size=2, n_batches=2, policy=policy, max_len=10)
    positions = sum(b.positions for b in batches)
    return 1 - sum(b.real_tokens for b in batches) / positions


def test_padding_waste_per_policy() -> None:
    assert _pad_share("fixed") == pytest.approx(22 / 40)
    assert _pad_share("longest") == pytest.approx(8 / 26)
    assert _pad_share("sorted") == pytest.approx(4 / 22)


def test_batches_are_deterministic_and_cycle() -> None:
    a = build_batches(ROWS, 3, 3, "longest", 10)
    b = build_batches(ROWS, 3, 3, "longest", 10)
    assert all((x.input_ids == y.input_ids).all() for x, y in zip(a, b, strict=True))
    assert sum(x.sequences for x in a) == 9  # 4 rows cycled to fill 9 slots


def test_multiple_choice_rows_repeat_per_choice() -> None:
    (batch,) = build_batches(ROWS[:2], 2, 1, "longest", 10, choices=4)
    assert tuple(batch.input_ids.shape) == (2, 4, 5)
    assert batch.sequences == 8


def test_language_stats(small_corpus: Path, cache_dir: Path) -> None:
    tok = train_surrogate(small_corpus, cache_dir, vocab_size=800)
    deu = language_stats(tok, small_corpus, "deu", max_len=30)
    assert deu.sentences == 16  # the even lines of 32
    assert deu.tokens_p50 <= deu.tokens_p95 <= deu.tokens_max
    assert 0 < deu.truncation_rate < 1  # some German sentences exceed 28 pieces of this vocab
    assert deu.fertility_mean > 0.5 and deu.chars_per_token > 1
    jpn = language_stats(tok, small_corpus, "jpn", max_len=128)
    assert jpn.truncation_rate == 0.0
    assert jpn.chars_per_token < deu.chars_per_token  # CJK packs fewer characters per piece


@pytest.mark.parametrize("language", ["heb", "ara", "jpn", "cmn", "tha", "hin+deu"])
def test_language_end_to_end(
    language: str, small_corpus: Path, cache_dir: Path, tmp_path: Path
) -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(4,),
        seq_lens=(16,),
        synthetic=False,
        languages=(language,),
        policies=("longest", "fixed"),
        lang_max_len=32,
        lang_batches=3,
        isolate=False,
        measure=MeasureSpec(min_iters=6, max_time_s=0.2),
    )
    path = run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir, corpus=small_corpus))
    records = load_run(path).records
    assert [r.status for r in records] == ["ok", "ok"]
    by_policy = {r.case["policy"]: r for r in records}
    for rec in records:
        assert rec.case["language"] == language
        assert rec.tokenizer["kind"] == "surrogate" and rec.tokenizer["sha256"]
        assert rec.workload["n_batches"] == 3
        assert rec.throughput["real_tokens_per_s"] > 0
    assert by_policy["fixed"].workload["padded_len_by_batch"] == [32, 32, 32]
    assert by_policy["fixed"].workload["pad_share"] > by_policy["longest"].workload["pad_share"]
