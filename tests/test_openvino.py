"""OpenVINO backends: float32 parity with eager, the precision OpenVINO chose in the record,
NNCF int8 calibrated on real sentences from the train half, and what is refused up front."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.backends import BackendContext, make_backend
from harness.backends.openvino import openvino_unavailable
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.execution.plan import plan_sweep
from harness.inputs.workloads import synthetic_batch
from harness.records.env import cpu_isa
from harness.records.results import load_run
from harness.spec.config import HEADS, ArchSpec, MeasureSpec, ModelSpec
from harness.spec.sweep import SweepSpec

pytest.importorskip("openvino")

TINY = ArchSpec(layers=2, hidden=32, ffn=64, heads=4, vocab=500, max_positions=130)


def _spec(head: str) -> ModelSpec:
    return ModelSpec(name=f"ov-{head}", source="random-init", head=head, arch=TINY, num_labels=5)


@pytest.mark.parametrize("head", HEADS)
def test_float32_matches_eager_at_an_unseen_shape(head: str, cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec(head), cache_dir)
    choices = ckpt.spec.choices
    example = synthetic_batch(2, 16, TINY.vocab, choices=choices, seed=1, pad_rows=True)
    probe = synthetic_batch(3, 29, TINY.vocab, choices=choices, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    ctx = BackendContext("cpu", "float32", 1, cache_dir, (("precision", "f32"),))
    b = make_backend("openvino", ctx)
    info = b.prepare(ckpt, example)
    got = b.output(b.run(b.bind(probe)))
    b.close()
    assert info["inference_precision"] == "f32" and not b.approximate  # type: ignore[attr-defined]
    assert info["num_threads"] == 1
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)


def test_auto_precision_is_recorded_and_judged_by_what_it_ran(cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    b = make_backend("openvino", BackendContext("cpu", "float32", 1, cache_dir))
    info = b.prepare(ckpt, synthetic_batch(2, 16, TINY.vocab, seed=1))
    b.close()
    bf16_cpu = bool(set(cpu_isa()) & {"avx512_bf16", "amx_bf16"})
    # OpenVINO picks bf16 where the CPU has it; either way the record says which ran, and a
    # graph that did not run float32 is approximate (accuracy, not a float32 tolerance).
    assert info["inference_precision"] in ("bf16", "f32")
    assert (info["inference_precision"] == "bf16") == b.approximate  # type: ignore[attr-defined]
    if not bf16_cpu:
        assert info["inference_precision"] == "f32"


def _sweep(backend: str, **options: str) -> SweepSpec:
    return SweepSpec(
        models=("xlmr-tiny",),
        backends=(backend,),
        batch_sizes=(2,),
        seq_lens=(16,),
        languages=("deu", "tha"),
        lang_max_len=32,
        lang_batches=2,
        isolate=False,
        backend_options={backend: {"min_cosine": "0.9", **options}},
        measure=MeasureSpec(min_iters=3, max_time_s=0.1),
    )


def test_int8_is_calibrated_on_the_train_half_and_reports_accuracy(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    sweep = _sweep("openvino-int8", calibration_languages="eng+deu")
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir, corpus=small_corpus)))
    assert len(run.records) == 3
    for rec in run.records:
        assert rec.status == "ok", rec.message
        cal = rec.backend["calibration"]
        assert cal["languages"] == ["eng", "deu"] and cal["split"].startswith("train")
        assert 0 < cal["sentences"] <= 64 and len(cal["sha256"]) == 64
        # Both languages calibrate, in turn: German is not drowned by nine English sides.
        assert abs(cal["by_language"]["eng"] - cal["by_language"]["deu"]) <= 1
        assert rec.backend["inference_precision"].startswith("int8")
        assert rec.parity["kind"] == "approximate"
    assert {r.case["language"] for r in run.records if r.case["language"]} == {"deu", "tha"}


def test_ort_static_int8_calibrates_and_differs_by_calibration(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    digests = []
    for i, langs in enumerate(("eng", "tha")):
        sweep = _sweep("onnxruntime-int8-static", calibration_languages=langs)
        opts = RunOptions(cache_dir=cache_dir, corpus=small_corpus)
        run = load_run(run_sweep(sweep, tmp_path / str(i), opts))
        for rec in run.records:
            assert rec.status == "ok", rec.message
            assert "quantize_static" in rec.backend["quantization"]["method"]
            assert rec.parity["kind"] == "approximate"
        digests.append(run.records[0].backend["calibration"]["sha256"])
    # Calibrated on other sentences: another graph, not the cached one.
    assert digests[0] != digests[1]


def test_calibration_needs_a_corpus_and_its_languages(
    tmp_path: Path, small_corpus: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "empty-cache"))
    synthetic = _sweep("openvino-int8").replace(languages=())
    with pytest.raises(HarnessError, match="calibrates on real sentences"):
        plan_sweep(synthetic)
    absent = _sweep("onnxruntime-int8-static", calibration_languages="xho")
    with pytest.raises(HarnessError, match="xho"):
        plan_sweep(absent.replace(corpus=str(small_corpus)))


def test_options_are_checked() -> None:
    with pytest.raises(HarnessError, match="precision"):
        plan_sweep(_sweep("openvino", precision="int4"))
    with pytest.raises(HarnessError, match="calibration_languages is for the int8"):
        plan_sweep(_sweep("openvino", calibration_languages="eng"))


def test_missing_openvino_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    message = openvino_unavailable()
    assert message is not None and "pip install 'xlmr-harness[openvino]'" in message


def test_calibration_never_takes_a_measured_sentence(small_corpus: Path) -> None:
    """Tatoeba's English sentences recur across files: a train line of one file can be a
    measured line of another; such a sentence never calibrates."""
    from harness.inputs.corpus import available_languages, read_pairs
    from harness.inputs.textload import calibration_batches, calibration_codes

    corpus = small_corpus.parent / "overlap"
    import shutil

    shutil.copytree(small_corpus, corpus)
    # Make deu's first train English line equal to tha's first measured English line.
    tha_eng = (corpus / "tatoeba.tha-eng.eng").read_text().splitlines()
    deu_eng = (corpus / "tatoeba.deu-eng.eng").read_text().splitlines()
    deu_eng[1] = tha_eng[0]
    (corpus / "tatoeba.deu-eng.eng").write_text("\n".join(deu_eng) + "\n")
    measured = set()
    for lang in available_languages(corpus):
        measured |= set(read_pairs(corpus, lang).split("measure").english)

    class Words:
        def encode(self, text: str) -> list[int]:
            return [len(w) for w in text.split()]

    _, facts = calibration_batches(corpus, "eng", Words(), 500, 32, 10_000)  # type: ignore[arg-type]
    pool_size = facts["sentences"]
    assert pool_size > 0
    from harness.inputs.textload import _english_pool

    pool = _english_pool(corpus)
    assert len(pool) == pool_size and not set(pool) & measured and len(set(pool)) == len(pool)
    assert calibration_codes(corpus, "eng+de") == ["eng", "deu"]
    for bad, message in (("deu+deu", "appears twice"), ("eng+", "empty"), ("xho", "unknown")):
        with pytest.raises(HarnessError, match=message):
            calibration_codes(corpus, bad)


def test_calibration_codes_are_written_back_normalized(small_corpus: Path) -> None:
    sweep = _sweep("onnxruntime-int8-static", calibration_languages="de+eng")
    planned = plan_sweep(sweep.replace(corpus=str(small_corpus)))
    options = {dict(c.options)["calibration_languages"] for c in planned.cases}
    assert options == {"deu+eng"}


def test_a_second_worker_finding_the_ir_built_keeps_it(tmp_path: Path) -> None:
    from harness.backends.onnx_graphs import staged

    folder = tmp_path / "ir"
    folder.mkdir()
    (folder / "model.xml").write_text("first")
    with staged(folder, required="model.xml") as staging:  # another worker finished first
        (staging / "model.xml").write_text("second")
    assert (folder / "model.xml").read_text() == "first"
    assert list(tmp_path.iterdir()) == [folder]  # the staging folder is gone
