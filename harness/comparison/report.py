"""The research report of a comparison: verdicts, confidence intervals, noise floor, memory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..render.html import markdown_to_html
from ..render.markdown import md_table
from ..render.verdicts import plot_ratios, summary_sentence, verdict_rows
from ..report import checkpoint_rows, environment_lines
from ..results import Run
from ..store import write_atomic
from .arms import AA_SUFFIX, comparisons_of
from .decide import CompareSettings, Comparison
from .noise import noise_floor

__all__ = ["comparison_markdown", "write_compare_report"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def comparison_markdown(
    cmp: Comparison, out: Path, heading: str = "##", noise: dict[str, float] | None = None
) -> str:
    plot = plot_ratios(cmp, out / f"ratios-{_slug(cmp.candidate)}.png")
    lines = [
        f"{heading} `{cmp.candidate}` against `{cmp.baseline}`",
        "",
        summary_sentence(cmp, noise),
        "",
    ]
    for w in cmp.warnings:
        lines.append(f"- ⚠ {w}")
    lines += ["", md_table(verdict_rows(cmp))]
    if plot is not None:
        lines.append(f"![ratios]({plot.name})\n")
    return "\n".join(lines)


def _noise_lines(aa: Comparison | None) -> list[str]:
    if aa is None:
        return ["## Noise floor", "", "_No A/A control in this run (add `--aa`)._", ""]
    n = noise_floor(aa)
    if not n:
        return ["## Noise floor", "", "_The A/A control measured nothing._", ""]
    return [
        "## Noise floor (A/A control)",
        "",
        f"The baseline against a separately prepared copy of itself, interleaved the same way: "
        f"median |ratio − 1| {n['median_abs_deviation_pct']:.2f} % (max "
        f"{n['max_abs_deviation_pct']:.2f} %), median CI half-width "
        f"{n['median_ci_halfwidth_pct']:.2f} %; false alarms (faster/slower verdicts) "
        f"{int(n['false_alarms'])} of {int(n['cases'])} cases "
        f"({100 * n['false_alarm_rate']:.0f} %); equivalent in {int(n['equivalent'])}.",
        "",
    ]


def write_compare_report(run: Run, settings: CompareSettings | None = None) -> Path:
    """Write ``comparison.json``, ``report.md`` and ``report.html`` into the run directory."""
    cfg = run.meta.config
    settings = settings or CompareSettings(**cfg.get("settings", {}))
    comparisons = comparisons_of(run, settings)
    aa = next((c for c in comparisons if c.candidate.endswith(AA_SUFFIX)), None)
    others = [c for c in comparisons if c is not aa]
    noise = noise_floor(aa) if aa is not None else None
    inter: dict[str, Any] = cfg.get("interleave", {})
    lines = [
        f"# Comparison `{run.meta.run_id}`",
        "",
        *[summary_sentence(c, noise) for c in others],
        "",
        *environment_lines(run.meta.env),
        f"- Method: arms interleaved in random order per round (block {inter.get('block')}, "
        f"{inter.get('min_rounds')}–{inter.get('max_rounds')} rounds, seed {inter.get('seed')}), "
        f"{cfg.get('processes', 1)} process(es), arms prepared in random order; effect: mean "
        "of per-round paired log ratios (per batch for real text), 95 % interval from a "
        "bootstrap over processes, then rounds; slower/faster: interval excludes 1, adjusted "
        f"p < α and beyond the minimum effect ({100 * settings.min_effect:g} %); equivalent: "
        f"90 % interval within ±{100 * settings.margin:g} %; {settings.correction} correction, "
        f"α = {settings.alpha:g}.",
        "",
        "## Checkpoints",
        "",
        md_table(checkpoint_rows(run.latest())),
        *_noise_lines(aa),
    ]
    for cmp in others:
        lines += [comparison_markdown(cmp, run.path, noise=noise), ""]
    if aa is not None:
        lines += [comparison_markdown(aa, run.path, heading="###"), ""]
    text = "\n".join(lines) + "\n"
    payload = {
        "run_id": run.meta.run_id,
        "comparisons": [c.to_dict() for c in comparisons],
        "noise_floor": noise_floor(aa) if aa else None,
    }
    write_atomic(run.path / "comparison.json", json.dumps(payload, indent=2) + "\n")
    md = run.path / "report.md"
    write_atomic(md, text)
    write_atomic(run.path / "report.html", markdown_to_html(text, run.path, run.meta.run_id))
    return md
