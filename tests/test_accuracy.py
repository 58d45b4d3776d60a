"""Accuracy of approximate backends: cosine per sentence and top-1 agreement, with numbers
that can be checked by hand, and the int8 backend end to end on real text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.measure.accuracy import accuracy_facts
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec


def test_identical_outputs_are_exact() -> None:
    ref = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    facts = accuracy_facts(ref.copy(), ref, "sequence-classification")
    assert facts["cosine_mean"] == pytest.approx(1.0) and facts["top1_agreement"] == 1.0
    assert facts["ok"] and facts["max_abs_diff"] == 0.0


def test_known_cosines_and_disagreement() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = np.array([[1.0, 1.0], [0.0, -1.0]])  # 45 degrees off; opposite
    facts = accuracy_facts(got, ref, "sequence-classification", min_cosine=0.5)
    assert facts["cosine_min"] == pytest.approx(-1.0)
    assert facts["cosine_mean"] == pytest.approx((np.sqrt(0.5) - 1) / 2)
    assert facts["top1_agreement"] == 0.5 and not facts["ok"]
    assert "top1_agreement" not in accuracy_facts(got, ref, "encoder")


def test_non_finite_and_shape_mismatch_are_not_numbers() -> None:
    ref = np.ones((2, 3))
    assert accuracy_facts(np.full((2, 3), np.nan), ref, "encoder")["non_finite"] == "backend"
    assert accuracy_facts(np.ones((2, 4)), ref, "encoder")["shape"] == [2, 4]


def test_int8_backend_reports_accuracy_on_real_text(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("onnxruntime-int8",),
        batch_sizes=(4,),
        seq_lens=(16,),
        languages=("deu", "tha"),
        lang_max_len=32,
        lang_batches=2,
        isolate=False,
        backend_options={"onnxruntime-int8": {"min_cosine": "0.9"}},
        measure=MeasureSpec(min_iters=5, max_time_s=0.2),
    )
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir, corpus=small_corpus)))
    assert len(run.records) == 3
    for rec in run.records:
        assert rec.backend["quantization"]["weights"] == "int8 (QInt8)"
        assert isinstance(rec.backend["cpu_isa"], list)
        assert rec.parity["kind"] == "approximate" and 0.9 <= rec.parity["cosine_mean"] <= 1.0
        assert rec.status == "ok", rec.message
    text = [r for r in run.records if r.case["language"]]
    assert {r.case["language"] for r in text} == {"deu", "tha"}
    for rec in text:
        facts = rec.parity["real_text"]
        assert facts["rows"] == 8 and facts["batches"] == 2
        assert facts["cosine_min"] <= facts["cosine_mean"] <= 1.0
