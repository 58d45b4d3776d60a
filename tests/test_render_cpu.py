"""The CPU report sections on hand-made records: shares of the ceiling, the causes named when a
case falls short, and the pick under an accuracy floor."""

from __future__ import annotations

from typing import Any

from harness.records.results import Record
from harness.render.cpu import (
    accuracy_of,
    cpu_lines,
    cpu_rows,
    limit_lines,
    pick_rows,
    ran_precision,
)


def _rec(
    backend: str,
    p50: float,
    *,
    library: str,
    precision: str,
    peak: float,
    flops: float = 22e9,
    at_shape: float | None = None,
    cosine: float | None = None,
    language: str | None = None,
    dtype: str = "float32",
    policy: str | None = None,
    checked: bool = True,
    extra: dict[str, Any] | None = None,
) -> Record:
    compute: dict[str, Any] = {
        "flops_per_call": flops,
        "achieved_gflops_at_p50": flops / p50 / 1e9,
        "share_of_cpu_peak": flops / p50 / 1e9 / peak,
        "cpu_peak": {"library": library, "precision": precision, "gflops": peak, "gemm": "x"},
    }
    if at_shape is not None:
        compute["cpu_peak"]["layer_gemms"] = {"tokens": 128, "gflops": at_shape}
    parity: dict[str, Any] = {"kind": "exact", "ok": True, "max_abs_diff": 1e-6}
    if cosine is not None:
        parity = {"kind": "approximate", "ok": True, "cosine_mean": cosine, "cosine_min": cosine}
        if language:
            parity["real_text"] = {"cosine_mean": cosine - 0.001, "cosine_min": cosine - 0.01}
    if not checked:
        parity = {"kind": "exact", "ok": True, "checked": False}
    case = {
        "backend": backend,
        "batch_size": 1,
        "seq_len": 128,
        "dtype": dtype,
        "device": "cpu",
        "language": language,
        "policy": policy,
        "threads": 2,
    }
    return Record(
        case_id=f"xlmr-base/{backend}/{dtype}/{language}/{policy}",
        case=case,  # type: ignore[arg-type]
        status="ok",
        summary={"p50": p50},  # type: ignore[typeddict-item]
        compute=compute,  # type: ignore[arg-type]
        parity=parity,  # type: ignore[arg-type]
        backend=extra or {},  # type: ignore[arg-type]
    )


def test_precision_and_accuracy_read_from_the_record() -> None:
    ov = _rec("openvino", 0.05, library="openvino", precision="bf16", peak=700, cosine=0.999,
              extra={"inference_precision": "bf16"})  # fmt: skip
    assert ran_precision(ov) == "bf16" and accuracy_of(ov) == (0.999, 0.999)
    eager = _rec("eager", 0.17, library="torch", precision="fp32", peak=170)
    assert ran_precision(eager) == "fp32" and accuracy_of(eager) is None
    real = _rec("onnxruntime-int8", 0.03, library="onnxruntime", precision="int8", peak=1051,
                cosine=0.999, language="tha")  # fmt: skip
    assert ran_precision(real) == "int8"
    assert accuracy_of(real) == (0.998, 0.989)  # the real sentences', not the probe's


def test_limit_lines_name_the_cause() -> None:
    records = [
        # 22 GFLOP in 85 ms = 259 GFLOP/s = 86 % of ORT's 302: at the limit.
        _rec("onnxruntime", 0.085, library="onnxruntime", precision="fp32", peak=302),
        # 22 GFLOP in 172 ms = 128 GFLOP/s = 42 % of 302, torch's GEMM 170 is 1.8x slower,
        # its GEMMs at the shape reach 140 (82 % of 170), the layer 91 % of those.
        _rec("eager", 0.172, library="torch", precision="fp32", peak=170, at_shape=140),
    ]
    lines = limit_lines(records)
    by_backend = {line.split("`")[2].split()[0]: line for line in lines}
    assert (
        "86 %" in by_backend["onnxruntime"] and "at this CPU's limit" in by_backend["onnxruntime"]
    )
    eager = by_backend["eager"]
    assert "42 % of the best fp32 GEMM" in eager and "1.8× slower than ONNX Runtime's" in eager
    assert "only 82 % of its library's peak" in eager
    assert "layer runs at" not in eager  # 128/140 = 91 %: the rest of the layer costs little


def test_pick_respects_the_floor_and_names_what_was_faster() -> None:
    records = [
        _rec("eager", 0.172, library="torch", precision="fp32", peak=170, language="tha"),
        _rec("onnxruntime", 0.086, library="onnxruntime", precision="fp32", peak=302,
             language="tha"),
        _rec("onnxruntime-int8-static", 0.025, library="onnxruntime", precision="int8",
             peak=1051, cosine=0.985, language="tha"),
        _rec("onnxruntime-int8", 0.028, library="onnxruntime", precision="int8", peak=1051,
             cosine=0.9995, language="tha"),
    ]  # fmt: skip
    (row,) = pick_rows(records, 0.99)
    assert row["pick"] == "onnxruntime-int8" and row["lang"] == "tha"
    assert row["× eager fp32"] == f"{0.172 / 0.028:.2f}×"
    assert row["faster, under the floor"] == "onnxruntime-int8-static"
    (strict,) = pick_rows(records, 0.9999)  # int8 fails too: the exact ORT graph wins
    assert strict["pick"] == "onnxruntime" and strict["cos"] == "exact"
    (loose,) = pick_rows(records, 0.98)
    assert loose["pick"] == "onnxruntime-int8-static"
    text = "\n".join(cpu_lines(records, 0.99))
    assert "## CPU: how far from this CPU's limit" in text and "## CPU: which to pick" in text


def test_no_cpu_sections_without_a_measured_ceiling() -> None:
    bare = Record(case_id="m/eager/x", case={"backend": "eager", "batch_size": 1,  # type: ignore[arg-type]
                  "seq_len": 8, "device": "cpu", "dtype": "float32"}, status="ok")  # fmt: skip
    assert cpu_lines([bare]) == []


def test_policies_and_dtypes_are_variants_of_their_own() -> None:
    """Each padding policy is its own case; eager bf16 is not "eager"; the speed-up is
    against eager float32 at the same policy."""
    tha = {"library": "torch", "precision": "fp32", "peak": 170, "language": "tha"}
    records = [
        _rec("eager", 0.20, policy="longest", **tha),  # type: ignore[arg-type]
        _rec("eager", 0.10, policy="sorted", **tha),  # type: ignore[arg-type]
        _rec("onnxruntime", 0.05, policy="sorted", **tha),  # type: ignore[arg-type]
        _rec("eager", 0.04, policy="sorted", dtype="bfloat16", cosine=0.95, **tha),  # type: ignore[arg-type]
    ]
    rows = {row["policy"]: row for row in pick_rows(records, 0.99)}
    assert set(rows) == {"sorted"}  # "longest" has one variant: nothing to pick
    assert rows["sorted"]["pick"] == "onnxruntime"
    assert rows["sorted"]["× eager fp32"] == "2.00×"  # 0.10 / 0.05, not 0.20 / 0.05
    assert rows["sorted"]["faster, under the floor"] == "eager bfloat16"


def test_an_uncompared_variant_is_never_picked_nor_called_exact() -> None:
    records = [
        _rec("onnxruntime", 0.05, library="onnxruntime", precision="fp32", peak=302),
        _rec("onnxruntime-int8", 0.01, library="onnxruntime", precision="int8", peak=1051,
             checked=False),
        _rec("eager", 0.17, library="torch", precision="fp32", peak=170),
    ]  # fmt: skip
    (row,) = pick_rows(records)
    assert row["pick"] == "onnxruntime"
    cells = {r["backend"]: r["cos"] for r in cpu_rows(records)}
    assert cells["onnxruntime-int8"] == "not compared" and cells["eager"] == "exact"


def test_bare_gemms_slower_than_the_model_are_not_called_a_ceiling() -> None:
    rec = _rec("openvino", 0.05, library="openvino", precision="bf16", peak=900, at_shape=100,
               extra={"inference_precision": "bf16"})  # fmt: skip
    (line,) = limit_lines([rec])  # 22 GFLOP in 50 ms = 440 GFLOP/s, the bare GEMMs 100
    assert "say nothing here" in line and "only" not in line
