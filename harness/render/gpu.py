"""GPU sections of a run report: the roofline table and the issue's targets as ratios."""

from __future__ import annotations

from harness.records.results import Record
from harness.render.rows import fmt_bytes, fmt_ms, options_text

__all__ = ["gpu_rows", "kernel_rows", "target_lines"]

#: (what, batch, seq, dtype, target, unit): latency targets are "at most", TFLOP/s "at least".
TARGETS = (
    ("latency", 1, 128, "bfloat16", 1.0e-3, "ms"),
    ("tflops", 64, 512, "bfloat16", 600.0, "TFLOP/s"),
)


def _pct(x: float | None) -> str:
    return f"{100 * x:.1f}%" if x is not None else "–"


def _variant(r: Record) -> str:
    variant = options_text(r)
    return str(r.case["backend"]) + (f" ({variant})" if variant else "")


def _gpu_ok(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status == "ok" and r.case.get("device") == "cuda"]


def kernel_rows(records: list[Record]) -> list[dict[str, str]]:
    """Where one call's device time goes, per case: kernels and milliseconds per kind
    (:mod:`harness.measure.kernels`), the gap between the call and its kernels (launch and idle
    time on the GPU), and the costliest kernel."""
    rows = []
    for r in _gpu_ok(records):
        kernels = r.gpu.get("kernels", {})
        kinds = kernels.get("by_kind")
        if not kinds:
            continue
        p50 = r.summary.get("p50")
        busy = kernels.get("device_time_s", 0.0)
        row = {
            "model": r.model,
            "backend": _variant(r),
            "batch": str(r.case["batch_size"]),
            "seq": str(r.case["seq_len"]),
            "p50 ms": fmt_ms(p50),
            "kernels": str(kernels.get("per_call", "–")),
            "busy ms": fmt_ms(busy),
            "idle ms": fmt_ms(max(0.0, p50 - busy)) if p50 else "–",
        }
        for kind in ("gemm", "attention", "norm", "fused (Inductor)", "elementwise"):
            got = kinds.get(kind)
            row[kind] = f"{got['kernels']} / {fmt_ms(got['device_time_s'])}" if got else "–"
        top = kernels.get("top") or []
        name = top[0]["name"] if top else "–"
        row["costliest kernel"] = (name[:48] + "…") if len(name) > 48 else name
        rows.append(row)
    return rows


def gpu_rows(records: list[Record]) -> list[dict[str, str]]:
    rows = []
    for r in _gpu_ok(records):
        comp = r.compute
        line = comp.get("roofline_at_p50", {})
        floor = line.get("weight_floor_s")
        kernels = r.gpu.get("kernels", {})
        rows.append(
            {
                "model": r.model,
                "backend": _variant(r),
                "dtype": r.case["dtype"],
                "batch": str(r.case["batch_size"]),
                "seq": str(r.case["seq_len"]),
                "p50 ms": fmt_ms(r.summary.get("p50")),
                "TFLOP/s": f"{line.get('achieved_tflops', 0):.1f}",
                "% peak": _pct(line.get("share_of_peak")),
                "% matmul": _pct(comp.get("share_of_measured_matmul_peak")),
                "weight floor ms": fmt_ms(floor),
                "× floor": f"{line['over_floor']:.1f}" if line.get("over_floor") else "–",
                "kernels/call": str(kernels["per_call"]) if "per_call" in kernels else "–",
                "max alloc": fmt_bytes(r.gpu.get("max_allocated_bytes")),
                "activations": fmt_bytes(r.gpu.get("activation_bytes")),
                "J/1k seq": f"{r.gpu['joules_per_1k_sequences']:.1f}"
                if "joules_per_1k_sequences" in r.gpu
                else "–",
            }
        )
    return rows


def target_lines(records: list[Record]) -> list[str]:
    """Each target as a ratio of the best backend's figure to the target, in this run."""
    lines = []
    for what, batch, seq, dtype, target, unit in TARGETS:
        hits = [
            r
            for r in records
            if r.status == "ok"
            and r.case.get("device") == "cuda"
            and r.case["batch_size"] == batch
            and r.case["seq_len"] == seq
            and r.case["dtype"] == dtype
        ]
        if not hits:
            continue
        if what == "latency":
            best = min(hits, key=lambda r: r.summary["p50"])
            value = best.summary["p50"]
            lines.append(
                f"- batch {batch} × {seq}, {dtype}: best p50 {value * 1e3:.3f} ms "
                f"({best.case['backend']}) = {value / target:.2f}× the {target * 1e3:g} ms target "
                f"({'met' if value <= target else 'not met'})."
            )
        else:
            best = max(hits, key=lambda r: r.compute.get("achieved_tflops", 0))
            value = best.compute["achieved_tflops"]
            lines.append(
                f"- batch {batch} × {seq}, {dtype}: best {value:.0f} {unit} "
                f"({best.case['backend']}) = {value / target:.2f}× the {target:g} {unit} target "
                f"({'met' if value >= target else 'not met'})."
            )
    return lines
