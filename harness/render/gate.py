"""Gate rows → table rows."""

from __future__ import annotations

from harness.comparison.gate import GateRow, GateSettings
from harness.render.rows import fmt_bytes, fmt_ms, fmt_rate

__all__ = ["gate_rows"]


def _value(metric: str, v: float) -> str:
    if metric == "memory":
        return fmt_bytes(v)
    if metric == "throughput":
        return f"{fmt_rate(v)}/s"
    return f"{fmt_ms(v)} ms"


def gate_rows(rows: list[GateRow], settings: GateSettings) -> list[dict[str, str]]:
    out = []
    for r in sorted(rows, key=lambda r: (not r.regression, -r.change)):
        verdict = "REGRESSION" if r.regression else "improved" if r.improvement else "within noise"
        ci = (
            f"[{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]%"
            if r.ci_low is not None and r.ci_high is not None
            else "–"
        )
        out.append(
            {
                "case": r.case_id,
                "metric": r.metric,
                "baseline": _value(r.metric, r.baseline),
                "candidate": _value(r.metric, r.candidate),
                "worse by": f"{100 * r.change:+.1f}%",
                "CI": ci,
                "p adj": f"{r.p_adj:.2g}" if r.p_adj is not None else "–",
                "threshold": f"{100 * settings.thresholds[r.metric]:g}%",
                "machine": f"{r.speed_factor:.2f}×" if r.speed_factor else "–",
                "unit": r.level,
                "verdict": verdict,
            }
        )
    return out
