"""Comparison results → rows, the summary sentence, and the forest plot."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from harness.comparison.decide import VERDICTS, Comparison, PairResult
from harness.render.rows import fmt_bytes, fmt_ms

__all__ = ["count_rows", "plot_ratios", "summary_sentence", "verdict_rows"]

_COLORS = {
    "faster": "#1a7f37",
    "slower": "#cf222e",
    "equivalent": "#0969da",
    "negligible": "#8250df",
    "inconclusive": "#9a6700",
    "invalid": "#6e7781",
}


def _case_label(r: PairResult) -> str:
    c = r.case
    label = f"{c.get('backend')} b{c.get('batch_size')} s{c.get('seq_len')}"
    if c.get("task"):
        label += f" {c.get('language')} {c['task']}"
    elif c.get("language"):
        label += f" {c['language']}/{c.get('policy')}"
    if c.get("dtype") and c.get("dtype") != "float32":
        label += f" {c['dtype']}"
    return label


def _alone_text(r: PairResult) -> str:
    """✓ when every arm's interleaved p50 is within noise of it alone, else the ratios."""
    if not r.alone:
        return "–"
    if all(a.within_noise for a in r.alone):
        return "✓ " + "/".join(f"{a.ratio:.2f}" for a in r.alone)
    return "✗ " + "/".join(f"{a.ratio:.2f}" for a in r.alone)


def verdict_rows(cmp: Comparison) -> list[dict[str, str]]:
    """One row per case, the verdict next to the case (the answer first, then its evidence)."""
    rows = []
    for r in sorted(cmp.results, key=lambda r: _case_label(r)):
        mem = (
            "–"
            if r.memory_baseline is None or r.memory_candidate is None
            else fmt_bytes(r.memory_candidate - r.memory_baseline)
        )
        rows.append(
            {
                "case": _case_label(r),
                "verdict": r.verdict,
                "ratio": f"{r.ratio:.3f}" if r.ratio else "–",
                "95% CI": f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.ci_low else "–",
                "p (adj)": f"{r.p_diff_adj:.2g}" if r.p_diff_adj is not None else "–",
                "detects ≥": f"{100 * r.mde:.1f}%" if r.mde is not None else "–",
                # Only meaningful where no change was shown: what equivalence could be claimed.
                "equiv. within": f"±{100 * r.shown_margin:.1f}%"
                if r.shown_margin is not None and r.verdict not in ("slower", "faster")
                else "–",
                "p50 ms": f"{fmt_ms(r.p50_baseline)} → {fmt_ms(r.p50_candidate)}",
                "≈ alone": _alone_text(r),
                "Δ peak RSS": mem,
                "notes": "; ".join(r.notes),
            }
        )
    return rows


def count_rows(comparisons: list[Comparison]) -> list[dict[str, str]]:
    """Per candidate and backend: how many cases got each verdict, and how many cases had
    every arm's interleaved p50 within noise of it run alone."""
    rows = []
    for cmp in comparisons:
        for backend in cmp.backends():
            counts = cmp.counts(backend)
            results = [r for r in cmp.results if r.case.get("backend") == backend]
            checked = [r for r in results if r.alone]
            row = {"candidate": cmp.candidate, "backend": backend}
            row |= {v: str(counts[v]) for v in VERDICTS}
            row["≈ alone"] = (
                f"{sum(all(a.within_noise for a in r.alone) for r in checked)} of {len(checked)}"
                if checked
                else "–"
            )
            rows.append(row)
    return rows


def summary_sentence(cmp: Comparison, noise: dict[str, float] | None = None) -> str:
    """The answer, computed from the verdicts (never written by hand). With an A/A ``noise``
    floor, changes no larger than what identical arms showed are called out as such."""
    s = cmp.settings
    measured = [r for r in cmp.results if r.ratio is not None]
    if not measured:
        return f"No case of `{cmp.candidate}` against `{cmp.baseline}` could be measured."
    counts = cmp.counts()
    ratios = [r.ratio for r in measured if r.ratio]
    lo, hi, mid = min(ratios), max(ratios), median(ratios)
    head = (
        f"Across {len(measured)} cases, `{cmp.candidate}` against `{cmp.baseline}`: "
        f"median latency ratio {mid:.3f} (range {lo:.3f}–{hi:.3f}); "
        f"{counts['equivalent']} equivalent within ±{100 * s.margin:g} %, "
        f"{counts['slower']} slower, {counts['faster']} faster, "
        f"{counts['negligible']} negligible (significant, wholly within ±{100 * s.min_effect:g} %), "
        f"{counts['inconclusive']} inconclusive ({s.correction} over this candidate's cases, "
        f"α = {s.alpha:g})."
    )
    suite = cmp.suite()
    if suite is not None:
        mdes = [r.mde for r in measured if r.mde is not None]
        head += (
            f" Suite: geometric-mean ratio {suite.ratio:.3f} (95 % CI {suite.ci_low:.3f}–"
            f"{suite.ci_high:.3f}); per case it would call a slowdown of "
            f'{100 * median(mdes):.1f} % "slower" with 90 % power (median over cases).'
            if mdes
            else ""
        )
    if counts["slower"] or counts["faster"]:
        moved = [r for r in measured if r.verdict in ("slower", "faster")]
        worst = max(moved, key=lambda r: abs(math.log(r.ratio or 1)))
        if noise and noise.get("max_abs_deviation_pct") is not None:
            floor = noise["max_abs_deviation_pct"] / 100
            inside = [r for r in moved if abs((r.ratio or 1) - 1) <= floor]
            if len(inside) == len(moved):
                return head + (
                    f" The {len(moved)} flagged case(s) moved by at most "
                    f"{100 * abs((worst.ratio or 1) - 1):.1f} %, no more than the A/A control "
                    f"(identical arms) moved on this machine (±{100 * floor:.1f} %): "
                    "**no change in inference cost is shown beyond this machine's noise**."
                )
        return head + (
            f" **It changes inference cost**: by up to {100 * ((worst.ratio or 1) - 1):+.1f} % "
            f"({_case_label(worst)})."
        )
    if counts["equivalent"] == len(measured):
        return head + (
            f" **It does not change inference cost here**: every case is equivalent "
            f"within ±{100 * s.margin:g} %."
        )
    return head + (
        f" No difference beyond ±{100 * s.min_effect:g} % was found, but equivalence "
        f"within ±{100 * s.margin:g} % is not shown for {counts['inconclusive']} case(s): "
        "more samples (rounds, processes) or a quieter machine would settle them."
    )


#: Tick positions for ratio axes: readable, and distinct when printed with ``:g``.
NICE_RATIOS = (0.25, 0.5, 0.67, 0.8, 0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 4.0)


def plot_ratios(cmp: Comparison, path: Path) -> Path | None:
    """Forest plot: ratio of medians with its CI per case, and the equivalence band."""
    measured = sorted([r for r in cmp.results if r.ratio is not None], key=_case_label)
    if not measured:
        return None
    fig = Figure(figsize=(7.5, 0.28 * len(measured) + 1.6))
    ax = fig.subplots()
    band = cmp.settings.margin
    ax.axvspan(1 / (1 + band), 1 + band, color="#ddf4ff", label=f"±{100 * band:g} % equivalence")
    ax.axvline(1.0, color="#57606a", lw=0.8)
    for i, r in enumerate(measured):
        color = _COLORS[r.verdict]
        ax.errorbar(
            [r.ratio or 1.0],
            [i],
            xerr=[[(r.ratio or 1) - (r.ci_low or 1)], [(r.ci_high or 1) - (r.ratio or 1)]],
            fmt="o",
            color=color,
            ms=4,
            capsize=2,
        )
    ax.set_yticks(range(len(measured)), [_case_label(r) for r in measured], fontsize=7)
    ax.set_xlabel(f"latency ratio {cmp.candidate} / {cmp.baseline} (95 % CI)")
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    # Nice ratios inside the shown range, each labelled once: a log axis's own minor labels
    # read "0.98, 1, 1, 1.1, 1.1" at two significant digits.
    ticks = [t for t in NICE_RATIOS if lo <= t <= hi] or [1.0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    handles = [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in _COLORS.items()]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
