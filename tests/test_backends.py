"""Parity: every backend's outputs match eager's, for every head, at a shape it was not
prepared with (so dynamic batch and sequence axes really work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.backends import BACKENDS, BackendContext, check_backend, make_backend
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.inputs.workloads import synthetic_batch
from harness.spec.config import HEADS, ArchSpec, ModelSpec

TINY = ArchSpec(layers=2, hidden=32, ffn=64, heads=4, vocab=500, max_positions=130)
CPU_BACKENDS = ("eager", "torchscript", "onnxruntime", "onnxruntime-fused")


def _spec(head: str) -> ModelSpec:
    return ModelSpec(name=f"t-{head}", source="random-init", head=head, arch=TINY, num_labels=5)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_parity_with_eager(head: str, backend: str, cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec(head), cache_dir)
    choices = ckpt.spec.choices
    example = synthetic_batch(2, 16, TINY.vocab, choices=choices, seed=1, pad_rows=True)
    probe = synthetic_batch(3, 37, TINY.vocab, choices=choices, seed=5, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    b = make_backend(backend, BackendContext("cpu", "float32", 1, cache_dir))
    info = b.prepare(ckpt, example)
    got = b.output(b.run(b.bind(probe)))
    b.close()
    expected_shape = {
        "encoder": (3, 32),
        "sequence-classification": (3, 5),
        "question-answering": (3, 2, 37),
        "token-classification": (3, 37, 5),
        "multiple-choice": (3, 4),
    }[head]
    assert got.shape == reference.shape == expected_shape
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)
    if backend == "onnxruntime-fused":
        # The optimizer must really fuse: one Attention node per layer.
        assert info["fusions"].get("Attention") == TINY.layers


def test_padding_changes_the_encoder_output(cache_dir: Path) -> None:
    """Guards the parity test itself: masks matter, so a graph that dropped the mask would fail."""
    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    full = synthetic_batch(3, 20, TINY.vocab, seed=3)
    padded = synthetic_batch(3, 20, TINY.vocab, seed=3, pad_rows=True)
    with torch.inference_mode():
        a = ckpt.model(full.input_ids, torch.ones_like(full.attention_mask)).numpy()
        b = ckpt.model(full.input_ids, padded.attention_mask).numpy()
    assert np.abs(a - b).max() > 1e-3


def test_registry_and_errors() -> None:
    assert set(CPU_BACKENDS) <= set(BACKENDS)
    with pytest.raises(HarnessError, match="unknown backend"):
        check_backend("tvm", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_cuda_unavailable_is_a_clear_error() -> None:
    with pytest.raises(HarnessError, match="unavailable on cuda"):
        check_backend("eager", "cuda")


def test_onnxruntime_refuses_bf16(cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    b = make_backend("onnxruntime", BackendContext("cpu", "bfloat16", 1, cache_dir))
    with pytest.raises(HarnessError, match="bfloat16 is not run on cpu"):
        b.prepare(ckpt, synthetic_batch(2, 8, TINY.vocab))


def test_onnxruntime_float16_is_for_the_cuda_provider() -> None:
    cls = BACKENDS["onnxruntime"]
    assert cls.dtypes_on("cpu") == ("float32",)  # type: ignore[attr-defined]
    assert "float16" in cls.dtypes_on("cuda")  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["onnxruntime", "onnxruntime-fused", "onnxruntime-int8"])
def test_io_binding_keeps_outputs_and_parity(backend: str, cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    example = synthetic_batch(2, 16, TINY.vocab, seed=1, pad_rows=True)
    probe = synthetic_batch(3, 21, TINY.vocab, seed=5, pad_rows=True)
    outs = []
    for binding in ("false", "true"):
        ctx = BackendContext("cpu", "float32", 1, cache_dir, (("io_binding", binding),))
        b = make_backend(backend, ctx)
        info = b.prepare(ckpt, example)
        assert info["io_binding"] is (binding == "true")
        bound = b.bind(probe)
        outs.append([b.output(b.run(bound)) for _ in range(2)])  # the binding is reusable
        b.close()
    (plain, _), (bound_a, bound_b) = outs
    np.testing.assert_array_equal(plain, bound_a)
    np.testing.assert_array_equal(bound_a, bound_b)


def test_ort_float16_converter_halves_the_weights(cache_dir: Path) -> None:
    import onnx

    from harness.backends.onnx_graphs import export_graph, to_float16

    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    plain, _, _ = export_graph(
        ckpt, synthetic_batch(2, 16, TINY.vocab, pad_rows=True), cache_dir, False
    )
    half, info = to_float16(plain, "false")
    model = onnx.load(str(half))
    kinds = {i.data_type for i in model.graph.initializer if len(i.dims) == 2}
    assert kinds == {onnx.TensorProto.FLOAT16} and info["fp16"]["fp16_initializers"] > 0
    # Inputs and outputs keep their types: the same feeds and parity check apply.
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [i for i in onnx.load(str(plain)).graph.initializer if len(i.dims) == 2]
    halves = [i for i in model.graph.initializer if len(i.dims) == 2]
    assert sum(len(i.raw_data) for i in halves) * 2 == sum(len(i.raw_data) for i in weights)


def test_eager_bf16_runs_and_casts(cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec("sequence-classification"), cache_dir)
    b = make_backend("eager", BackendContext("cpu", "bfloat16", 1, cache_dir))
    b.prepare(ckpt, synthetic_batch(2, 8, TINY.vocab))
    out = b.run(b.bind(synthetic_batch(2, 8, TINY.vocab)))
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_fused_qkv_keeps_parity(head: str, backend: str, cache_dir: Path) -> None:
    """Q, K and V as one GEMM: the same outputs as transformers' model, for every head."""
    ckpt = load_checkpoint(_spec(head), cache_dir)
    choices = ckpt.spec.choices
    probe = synthetic_batch(3, 29, TINY.vocab, choices=choices, seed=7, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    ctx = BackendContext("cpu", "float32", 1, cache_dir, (("fuse_qkv", "true"),))
    b = make_backend(backend, ctx)
    info = b.prepare(
        ckpt, synthetic_batch(2, 16, TINY.vocab, choices=choices, seed=1, pad_rows=True)
    )
    got = b.output(b.run(b.bind(probe)))
    b.close()
    assert info["fuse_qkv"] is True
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=1e-4)


def test_fused_qkv_has_one_projection_per_layer(cache_dir: Path) -> None:
    from harness.backends.fused import fuse_qkv

    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    fused = fuse_qkv(ckpt.model)
    names = [n for n, _ in fused.named_modules() if n.endswith(".qkv")]
    assert len(names) == TINY.layers
    assert fused.layers[0].qkv.weight.shape == (3 * TINY.hidden, TINY.hidden)


def test_fused_qkv_refuses_an_unknown_layout() -> None:
    from harness.backends.fused import fuse_qkv
    from harness.checkpoints.heads import ServingModel

    with pytest.raises(HarnessError, match="fuse_qkv: .* has no 'embeddings'"):
        fuse_qkv(ServingModel(torch.nn.Linear(2, 2), "encoder"))


def test_bf16_on_cpu_says_whether_it_is_native(cache_dir: Path) -> None:
    from harness.records.env import cpu_isa

    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    b = make_backend("eager", BackendContext("cpu", "bfloat16", 1, cache_dir))
    info = b.prepare(ckpt, synthetic_batch(2, 16, TINY.vocab))
    assert info["cpu_isa"] == cpu_isa()
    assert info["native_reduced_precision"] == bool({"avx512_bf16", "amx_bf16"} & set(cpu_isa()))
    assert b.output(b.run(b.bind(synthetic_batch(2, 8, TINY.vocab)))).dtype == np.float32


@pytest.mark.parametrize(
    ("backend", "exporter", "fused_op"),
    [
        ("onnxruntime", "legacy", None),
        ("onnxruntime", "dynamo", None),
        ("onnxruntime-fused", "legacy", "Attention"),
        ("onnxruntime-fused", "dynamo", "MultiHeadAttention"),
    ],
)
def test_both_exporters_keep_parity_and_say_which_ran(
    backend: str, exporter: str, fused_op: str | None, cache_dir: Path
) -> None:
    ckpt = load_checkpoint(_spec("sequence-classification"), cache_dir)
    example = synthetic_batch(2, 16, TINY.vocab, seed=1, pad_rows=True)
    probe = synthetic_batch(3, 29, TINY.vocab, seed=7, pad_rows=True)
    with torch.inference_mode():
        reference = ckpt.model(probe.input_ids, probe.attention_mask).numpy()
    ctx = BackendContext("cpu", "float32", 1, cache_dir, (("exporter", exporter),))
    b = make_backend(backend, ctx)
    info = b.prepare(ckpt, example)
    got = b.output(b.run(b.bind(probe)))
    b.close()
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)
    assert exporter in info["exporter"]
    assert info["opset"] == (17 if exporter == "legacy" else 18)
    if fused_op is not None:
        # Each exporter's graph is fused by the tool that recognizes it: one per layer.
        assert info["fusions"].get(fused_op) == TINY.layers


def test_auto_falls_back_to_the_dynamo_exporter_and_records_why(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the legacy exporter fails (or a future torch drops it), ``auto`` exports with
    dynamo and the record says why; an exporter asked for by name never falls back."""
    from harness.backends import onnx_graphs as ortb

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the legacy exporter was removed")

    monkeypatch.setattr(ortb, "_export_legacy", broken)
    ckpt = load_checkpoint(_spec("encoder"), cache_dir)
    b = make_backend("onnxruntime", BackendContext("cpu", "float32", 1, tmp_path))
    info = b.prepare(ckpt, synthetic_batch(2, 8, TINY.vocab))
    b.close()
    assert "dynamo" in info["exporter"]
    assert "legacy exporter was removed" in info["exporter_fallback"]
    ctx = BackendContext("cpu", "float32", 1, tmp_path / "b", (("exporter", "legacy"),))
    asked = make_backend("onnxruntime", ctx)
    with pytest.raises(HarnessError, match="legacy ONNX export failed"):
        asked.prepare(ckpt, synthetic_batch(2, 8, TINY.vocab))
    assert not list((tmp_path / "b" / "onnx").glob("*/model.onnx"))  # nothing half-written


def test_auto_prefers_the_legacy_exporter_whose_graphs_ran_faster() -> None:
    from harness.backends.onnx_graphs import resolve_exporter

    assert resolve_exporter("auto") == "legacy"
    assert resolve_exporter("dynamo") == "dynamo"
