"""ONNX export directories (what ``optimum-cli export onnx`` writes) as checkpoints: built by
optimum where it is installed, and by hand (torch.onnx, transformers' outputs, the same files)
everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.checkpoints.load import build_random_init
from harness.cli import main
from harness.records.results import load_run
from harness.spec.config import resolve_model
from harness.spec.onnx_export import inspect_export, is_onnx_export_dir, serving_output

FAST = ["--max-time", "0.2", "--inline", "--threads", "1"]


def _weights(cache_dir: Path, name: str = "xlmr-tiny") -> Path:
    return build_random_init(resolve_model(name), cache_dir)


def hand_made_export(weights: Path, out: Path, head: str = "encoder", origin: bool = True) -> Path:
    """What optimum-cli writes for XLM-R: model.onnx with transformers' input and output
    names and dynamic axes, config.json (its ``_name_or_path`` the weights it came from)."""
    from transformers import XLMRobertaForSequenceClassification, XLMRobertaModel

    out.mkdir(parents=True)
    if head == "encoder":
        model = XLMRobertaModel.from_pretrained(weights, add_pooling_layer=False)
        outputs = ["last_hidden_state"]
    else:
        model = XLMRobertaForSequenceClassification.from_pretrained(weights, num_labels=3)
        outputs = ["logits"]
    model.eval()

    class ByName(torch.nn.Module):  # transformers 5 moved forward's positional arguments
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state if head == "encoder" else out.logits

    ids = torch.randint(5, 100, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {0: "batch_size", 1: "sequence_length"}
    with torch.no_grad():
        torch.onnx.export(
            ByName(),
            (ids, mask),
            str(out / "model.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids", "attention_mask"],
            output_names=outputs,
            dynamic_axes={"input_ids": axes, "attention_mask": axes, outputs[0]: axes},
        )
    config = json.loads((weights / "config.json").read_text())
    config["_name_or_path"] = str(weights) if origin else "FacebookAI/xlm-roberta-base"
    (out / "config.json").write_text(json.dumps(config))
    return out


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_a_hand_made_export_runs_with_parity_against_its_weights(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = hand_made_export(_weights(cache_dir), tmp_path / "xlmr-tiny-onnx")
    assert is_onnx_export_dir(export) and inspect_export(export).head == "encoder"
    spec = resolve_model(str(export))
    assert spec.is_onnx_export and spec.reference == str(_weights(cache_dir).resolve())
    out = tmp_path / "runs"
    code, err = _run(
        [
            *["run", "-m", str(export), "-b", "onnxruntime", "-b", "onnxruntime-int8"],
            *["--batch-sizes", "2", "--seq-lens", "16", "--out", str(out)],
            *["--cache-dir", str(cache_dir), *FAST],
        ],
        capsys,
    )
    assert code == 0, err
    (run_dir,) = out.iterdir()
    records = load_run(run_dir).records
    assert [r.status for r in records] == ["ok", "ok"]
    fp32, int8 = records
    assert fp32.parity["ok"] and fp32.parity["max_abs_diff"] < 1e-4  # the same function
    assert int8.parity["kind"] == "approximate" and int8.parity["cosine_mean"] > 0.9
    assert (
        fp32.backend["exporter"].startswith("given: ") and str(export) in fp32.backend["exporter"]
    )
    assert fp32.checkpoint["onnx_export"]["outputs"] == ["last_hidden_state"]
    # Quantized and optimized graphs go to the cache, never into the user's directory.
    assert sorted(p.name for p in export.iterdir()) == ["config.json", "model.onnx"]


def test_an_export_without_reference_weights_runs_and_says_parity_was_not_checked(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = hand_made_export(_weights(cache_dir), tmp_path / "exp", origin=False)
    assert resolve_model(str(export)).reference is None
    out = tmp_path / "runs"
    code, err = _run(
        [
            *["run", "-m", str(export), "-b", "onnxruntime", "--batch-sizes", "1"],
            *["--seq-lens", "8", "--out", str(out), "--cache-dir", str(cache_dir), *FAST],
        ],
        capsys,
    )
    assert code == 0, err
    (rec,) = load_run(next(out.iterdir())).records
    assert rec.status == "ok" and rec.parity["checked"] is False
    assert "not compared" in rec.parity["note"]


def test_the_head_comes_from_the_graph(tmp_path: Path, cache_dir: Path) -> None:
    export = hand_made_export(_weights(cache_dir), tmp_path / "cls", head="sequence-classification")
    spec = resolve_model(str(export))
    assert spec.head == "sequence-classification" and spec.num_labels == 3


def test_serving_output_matches_the_harness_heads() -> None:
    hidden = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    mask = np.array([[1, 1, 1], [1, 0, 0]])
    pooled = serving_output("encoder", {"last_hidden_state": hidden}, mask)
    assert np.allclose(pooled[0], hidden[0].mean(axis=0)) and np.allclose(pooled[1], hidden[1, 0])
    start, end = np.zeros((2, 3)), np.ones((2, 3))
    qa = serving_output("question-answering", {"start_logits": start, "end_logits": end}, mask)
    assert qa.shape == (2, 2, 3) and qa[:, 1].sum() == 6


def test_bad_export_directories_are_one_line_errors(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = hand_made_export(_weights(cache_dir), tmp_path / "exp")
    base = ["--batch-sizes", "1", "--seq-lens", "8", "--out", str(tmp_path / "o")]
    base += ["--cache-dir", str(cache_dir), *FAST]
    code, err = _run(["run", "-m", str(export), "-b", "eager", *base], capsys)
    assert code == 2 and "is an ONNX export" in err and "eager" in err
    assert len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    code, err = _run(["run", "-m", str(broken), "-b", "onnxruntime", *base], capsys)
    assert code == 2 and "not a readable ONNX model" in err
    option = ["--backend-option", "onnxruntime.io_binding=true"]
    code, err = _run(["run", "-m", str(export), "-b", "onnxruntime", *option, *base], capsys)
    assert code == 2 and "checkpoints the harness exports itself" in err
    spec = tmp_path / "ref.toml"
    spec.write_text(f'name = "r"\nsource = "random-init"\nreference = "{export}"\n')
    code, err = _run(["run", "-m", str(spec), "-b", "onnxruntime", *base], capsys)
    assert code == 2 and "is not one" in err
    assert not (tmp_path / "o").exists()


def test_an_optimum_export_loads_and_runs(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_main = pytest.importorskip("optimum.exporters.onnx").main_export
    weights = _weights(cache_dir)
    export = tmp_path / "optimum-export"
    onnx_main(str(weights), output=export, task="feature-extraction", no_post_process=False)
    assert is_onnx_export_dir(export)
    # optimum's config does not say where it came from: a spec names the reference weights.
    spec = tmp_path / "optimum.toml"
    spec.write_text(f'name = "optimum-tiny"\nsource = "{export}"\nreference = "{weights}"\n')
    out = tmp_path / "runs"
    code, err = _run(
        [
            *["run", "-m", str(spec), "-b", "onnxruntime", "--batch-sizes", "2"],
            *["--seq-lens", "16", "--out", str(out), "--cache-dir", str(cache_dir), *FAST],
        ],
        capsys,
    )
    assert code == 0, err
    (rec,) = load_run(next(out.iterdir())).records
    assert rec.status == "ok" and rec.parity.get("max_abs_diff", 1.0) < 1e-4


@pytest.mark.parametrize("head", ["encoder", "sequence-classification", "question-answering"])
def test_optimum_as_the_harness_exporter_keeps_parity(head: str, cache_dir: Path) -> None:
    pytest.importorskip("optimum.exporters.onnx")
    from harness.backends import BackendContext, make_backend
    from harness.checkpoints.load import load_checkpoint
    from harness.inputs.workloads import synthetic_batch
    from harness.spec.config import ArchSpec, ModelSpec

    arch = ArchSpec(layers=2, hidden=32, ffn=64, heads=4, vocab=500, max_positions=130)
    spec = ModelSpec(name=f"o-{head}", source="random-init", head=head, arch=arch)
    ckpt = load_checkpoint(spec, cache_dir)
    probe = synthetic_batch(3, 21, arch.vocab, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.torch_model()(probe.input_ids, probe.attention_mask).numpy()
    ctx = BackendContext("cpu", "float32", 1, cache_dir, (("exporter", "optimum"),))
    b = make_backend("onnxruntime", ctx)
    info = b.prepare(ckpt, synthetic_batch(2, 16, arch.vocab, pad_rows=True))
    got = b.output(b.run(b.bind(probe)))
    assert info["exporter"].startswith("optimum-onnx")
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)


def test_exporter_optimum_without_optimum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends import BACKENDS, onnx_graphs
    from harness.errors import HarnessError

    monkeypatch.setattr(onnx_graphs, "optimum_version", lambda: None)
    with pytest.raises(HarnessError, match=r"exporter=optimum needs optimum"):
        BACKENDS["onnxruntime"].check_options({"exporter": "optimum"})
