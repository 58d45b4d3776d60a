"""CPU sections of a run report: each case against this CPU's own GEMM ceiling, and which
variant to pick per language and batch size under an accuracy floor."""

from __future__ import annotations

from typing import Any

from harness.measure.accuracy import DEFAULT_MIN_COSINE
from harness.records.results import Record
from harness.render.markdown import md_table
from harness.render.rows import fmt_ms, options_text, sort_records

__all__ = ["accuracy_of", "cpu_lines", "cpu_rows", "limit_lines", "pick_rows", "ran_precision"]

#: At or above this share of its precision's best GEMM, a case is at the CPU's limit.
AT_LIMIT = 0.85
_LIBRARY_NAMES = {"torch": "torch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def _pct(x: float | None) -> str:
    return f"{100 * x:.0f}%" if x is not None else "–"


def _variant(r: Record) -> str:
    """The backend, its dtype when not float32, and its options: what tells two CPU variants
    of one case apart."""
    variant = options_text(r)
    dtype = str(r.case.get("dtype", "float32"))
    label = str(r.case["backend"]) + ("" if dtype == "float32" else f" {dtype}")
    return label + (f" ({variant})" if variant else "")


def compared(r: Record) -> bool:
    """Whether the case's outputs were compared with eager float32's at all (an ONNX export
    given without reference weights is not)."""
    return r.parity.get("checked", True) is not False


def _cpu_ok(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status == "ok" and r.case.get("device", "cpu") == "cpu"]


def ran_precision(r: Record) -> str:
    """What the case computed in: int8 for the int8 variants, what OpenVINO chose, the dtype."""
    backend = str(r.case["backend"])
    if "int8" in backend:
        return "int8"
    ran = r.backend.get("inference_precision")
    if ran:
        return {"f32": "fp32"}.get(str(ran), str(ran))
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(
        str(r.case["dtype"]), str(r.case["dtype"])
    )


def accuracy_of(r: Record) -> tuple[float, float] | None:
    """(mean, min) cosine to eager float32 on what the case ran — its real sentences where it
    had them — or None for an exact variant (held to the float32 tolerance instead)."""
    parity = r.parity
    if parity.get("kind") != "approximate":
        return None
    real: Any = parity.get("real_text") or {}
    if "cosine_mean" in real:
        return float(real["cosine_mean"]), float(real.get("cosine_min", real["cosine_mean"]))
    if "cosine_mean" in parity:
        return float(parity["cosine_mean"]), float(parity.get("cosine_min", 0.0))
    return None


def _best_by_precision(records: list[Record]) -> dict[str, tuple[str, float]]:
    """The fastest GEMM measured in the run per precision: (library, GFLOP/s)."""
    best: dict[str, tuple[str, float]] = {}
    for r in records:
        peak = r.compute.get("cpu_peak")
        if not peak:
            continue
        precision, rate = str(peak["precision"]), float(peak["gflops"])
        if precision not in best or rate > best[precision][1]:
            best[precision] = (str(peak["library"]), rate)
    return best


def cpu_rows(records: list[Record]) -> list[dict[str, str]]:
    ok = [r for r in sort_records(_cpu_ok(records)) if r.compute.get("cpu_peak")]
    best = _best_by_precision(ok)
    rows = []
    for r in ok:
        comp = r.compute
        peak = comp["cpu_peak"]
        achieved = comp.get("achieved_gflops_at_p50", 0.0)
        top_lib, top = best[str(peak["precision"])]
        shape = peak.get("layer_gemms", {})
        accuracy = accuracy_of(r)
        rows.append(
            {
                "model": r.model,
                "backend": _variant(r),
                "ran": ran_precision(r),
                "batch": str(r.case["batch_size"]),
                "seq": str(r.case["seq_len"]),
                "lang": str(r.case.get("language") or "–"),
                "policy": str(r.case.get("policy") or "–"),
                "p50 ms": fmt_ms(r.summary.get("p50")),
                "GFLOP/s": f"{achieved:.0f}",
                "own GEMM": f"{peak['gflops']:.0f} ({peak['library']} {peak['precision']})",
                "% own": _pct(comp.get("share_of_cpu_peak")),
                "% best": _pct(achieved / top) + ("" if top_lib == peak["library"] else "*"),
                "% GEMMs at shape": _pct(achieved / shape["gflops"]) if shape else "–",
                "cos": _cos_cell(r, accuracy),
            }
        )
    return rows


def _cos_cell(r: Record, accuracy: tuple[float, float] | None) -> str:
    if not compared(r):
        return "not compared"
    return f"{accuracy[0]:.4f}" if accuracy else "exact"


def limit_lines(records: list[Record]) -> list[str]:
    """One line per synthetic CPU case: how far from this CPU's limit, and what stands in the
    way (the library's GEMM, the GEMMs' shape, or the rest of the layer)."""
    ok = [r for r in sort_records(_cpu_ok(records)) if r.compute.get("cpu_peak")]
    best = _best_by_precision(ok)
    lines = []
    for r in ok:
        if r.case.get("language") or r.case.get("task"):
            continue
        comp = r.compute
        peak = comp["cpu_peak"]
        achieved = float(comp.get("achieved_gflops_at_p50", 0.0))
        precision = str(peak["precision"])
        own_lib = str(peak["library"])
        top_lib, top = best[precision]
        share = achieved / top
        what = (
            f"`{r.model}` {_variant(r)} b{r.case['batch_size']}×{r.case['seq_len']}: "
            f"{achieved:.0f} GFLOP/s, {100 * share:.0f} % of the best {precision} GEMM "
            f"measured here ({top:.0f}, {_LIBRARY_NAMES.get(top_lib, top_lib)})"
        )
        if share >= AT_LIMIT:
            lines.append(f"- {what}: at this CPU's limit for {precision}.")
            continue
        why = []
        own = float(peak["gflops"])
        if top_lib != own_lib and top > 1.1 * own:
            why.append(
                f"{_LIBRARY_NAMES.get(own_lib, own_lib)}'s own {precision} GEMM is "
                f"{top / own:.1f}× slower than {_LIBRARY_NAMES.get(top_lib, top_lib)}'s "
                "on this CPU"
            )
        shape = peak.get("layer_gemms")
        if shape and achieved > 1.05 * float(shape["gflops"]):
            # The bare GEMMs timed slower than the whole layer ran: no ceiling at this shape.
            why.append(
                f"its GEMMs timed bare at this shape ({float(shape['gflops']):.0f} GFLOP/s) "
                "ran slower than the whole model did, so they say nothing here"
            )
        elif shape:
            at_shape = float(shape["gflops"])
            if at_shape < 0.9 * own:
                why.append(
                    f"its GEMMs at this shape ({shape['tokens']} rows) reach only "
                    f"{100 * at_shape / own:.0f} % of its library's peak"
                )
            rest = achieved / at_shape
            if rest < 0.9:
                why.append(
                    f"the layer runs at {100 * rest:.0f} % of its GEMMs alone: attention, "
                    "norms, GELU and the runtime's own work take the rest"
                )
        lines.append(
            f"- {what}: "
            + ("; ".join(why) or "its GEMMs at this shape were not timed, so no cause is named")
            + "."
        )
    return lines


def pick_rows(
    records: list[Record], min_cosine: float = DEFAULT_MIN_COSINE
) -> list[dict[str, str]]:
    """The fastest CPU variant per (model, task, language, batch size, length) whose cosine
    to eager float32 is at least ``min_cosine`` (exact variants always qualify), with its
    share of the ceiling and what was faster but fell under the floor."""
    groups: dict[tuple[Any, ...], list[Record]] = {}
    for r in _cpu_ok(records):
        c = r.case
        key = (
            r.model,
            c.get("task") or "",
            c.get("language") or "",
            c.get("policy") or "",
            c["batch_size"],
            c["seq_len"],
            c.get("threads"),
        )
        groups.setdefault(key, []).append(r)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        members = [r for r in groups[key] if r.summary.get("p50") and compared(r)]
        if len(members) < 2:
            continue

        def qualifies(r: Record) -> bool:
            acc = accuracy_of(r)
            return acc is None or acc[0] >= min_cosine

        fit = sorted((r for r in members if qualifies(r)), key=lambda r: r.summary["p50"])
        if not fit:
            continue
        pick = fit[0]
        eager = next(  # the same case (policy, threads) on eager float32
            (r for r in members if r.case["backend"] == "eager" and ran_precision(r) == "fp32"),
            None,
        )
        under = [
            _variant(r)
            for r in members
            if not qualifies(r) and r.summary["p50"] < pick.summary["p50"]
        ]
        acc = accuracy_of(pick)
        model, task, language, policy, batch, seq, _ = key
        rows.append(
            {
                "model": model,
                "task": task or "–",
                "lang": language or "–",
                "policy": policy or "–",
                "batch": str(batch),
                "seq": str(seq),
                "pick": _variant(pick),
                "ran": ran_precision(pick),
                "p50 ms": fmt_ms(pick.summary["p50"]),
                "× eager fp32": (
                    f"{eager.summary['p50'] / pick.summary['p50']:.2f}×" if eager else "–"
                ),
                "cos": f"{acc[0]:.4f}" if acc else "exact",
                "% own GEMM": _pct(pick.compute.get("share_of_cpu_peak")),
                "faster, under the floor": ", ".join(under) or "–",
            }
        )
    return rows


def cpu_lines(records: list[Record], min_cosine: float = DEFAULT_MIN_COSINE) -> list[str]:
    """The CPU sections: the ceiling table when a CPU case measured its ceiling, "which to
    pick" whenever a case has variants to choose between."""
    rows = cpu_rows(records)
    picks = pick_rows(records, min_cosine)
    lines: list[str] = []
    if rows:
        lines += [
            "## CPU: how far from this CPU's limit",
            "",
            "GFLOP/s are model FLOPs (`harness.measure.roofline.forward_flops`) at the median "
            "latency. `own GEMM` is a 2048³ GEMM timed at the group's start with the kernels "
            "the backend itself uses, in the precision it ran (`harness.measure.cpu_peak`); "
            "`% best` is against the fastest GEMM of that precision measured in this run (`*`: "
            "another library's); `% GEMMs at shape` against the same kernels running one "
            "layer's linear layers at the case's own shape, bare. The int8 ceiling is an "
            "int8 GEMM (u8 × s8): it covers the linear layers, while dynamic int8 keeps "
            "attention's two matmuls in float32. `cos` is the mean cosine to eager float32 on "
            "the case's own inputs (real sentences where it had them; `not compared`: no "
            "reference weights, left out of the pick below).",
            "",
            md_table(rows),
            *limit_lines(records),
            "",
        ]
    if picks:
        lines += [
            "## CPU: which to pick",
            "",
            f"The fastest variant per language and batch size whose mean cosine to eager "
            f"float32 is at least {min_cosine} (exact variants always qualify; "
            "`harness report RUN --min-cosine X` sets the floor), and what was faster but fell "
            "under it.",
            "",
            md_table(picks),
            "",
        ]
    return lines
