"""The research report of a comparison: verdicts, confidence intervals, noise floor, memory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.comparison.alone import TOLERANCE
from harness.comparison.arms import AA_SUFFIX, comparisons_of
from harness.comparison.decide import CompareSettings, Comparison
from harness.comparison.noise import noise_floor
from harness.records.results import Run
from harness.records.store import write_atomic
from harness.render.html import markdown_to_html
from harness.render.markdown import md_table
from harness.render.run_report import checkpoint_rows, damage_lines, environment_lines
from harness.render.verdicts import count_rows, plot_ratios, summary_sentence, verdict_rows

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


def _alone_lines(comparisons: list[Comparison]) -> list[str]:
    """Each arm's interleaved p50 against it alone, per case (the baseline once)."""
    seen: set[tuple[str, str]] = set()
    lines = []
    for cmp in comparisons:
        for r in sorted(cmp.results, key=lambda r: r.key):
            for check in r.alone:
                if (check.arm, r.key) in seen:
                    continue
                seen.add((check.arm, r.key))
                lines.append(f"- {r.key}: {check.sentence()}")
    if not lines:
        return []
    moved = [line for line in lines if "moved" in line]
    head = (
        f"**{len(moved)} of {len(lines)} arm × case p50s moved** when interleaved (beyond "
        f"±{100 * TOLERANCE:g} %): their latencies are not what the checkpoint costs alone."
        if moved
        else f"Every arm's interleaved p50 is within noise of the same arm run alone "
        f"({len(lines)} arm × case checks; ±{100 * TOLERANCE:g} %)."
    )
    return ["## Interleaved against alone", "", head, "", *lines, ""]


def _method_line(run: Run, settings: CompareSettings) -> str:
    cfg = run.meta.config
    inter: dict[str, Any] = cfg.get("interleave", {})
    return (
        f"- Method: {cfg.get('processes', 1)} fresh process(es), each preparing the arms in a "
        f"rotated order and running {inter.get('rounds')} rounds per case in a random arm "
        f"order (seed {inter.get('seed')}); a block per arm per round of at least "
        f"{inter.get('block')} timed calls and {inter.get('block_s')} s, after "
        f"{inter.get('warmup_s')} s (≥ 1 call) of untimed warm-up, sized on the slowest arm. "
        "Effect: per process the median of per-round paired log ratios of block medians (per "
        "batch for real text), a process more than 25 % off the others' speed left out, then "
        "a t interval over processes. slower/faster: adjusted p < α and beyond the minimum "
        f"effect ({100 * settings.min_effect:g} %); equivalent: (1 − 2α) interval "
        f"within ±{100 * settings.margin:g} %; negligible: a change whose (1 − α) interval lies "
        f"within ±{100 * settings.min_effect:g} %. Family for the {settings.correction} "
        f"adjustment: each candidate's cases; α = {settings.alpha:g}."
    )


def write_compare_report(run: Run, settings: CompareSettings | None = None) -> Path:
    """Write ``comparison.json``, ``report.md`` and ``report.html`` into the run directory."""
    cfg = run.meta.config
    settings = settings or CompareSettings(**cfg.get("settings", {}))
    comparisons = comparisons_of(run, settings)
    aa = next((c for c in comparisons if c.candidate.endswith(AA_SUFFIX)), None)
    others = [c for c in comparisons if c is not aa]
    noise = noise_floor(aa) if aa is not None else None
    lines = [f"# Comparison `{run.meta.run_id}`", "", *damage_lines(run)]
    for c in others:  # each candidate's answer its own paragraph
        lines += [summary_sentence(c, noise), ""]
    lines += [
        md_table(count_rows(comparisons)),
        "",
        *environment_lines(run.meta.env),
        _method_line(run, settings),
        "",
        "## Checkpoints",
        "",
        md_table(checkpoint_rows(run.latest())),
        *_noise_lines(aa),
        *_alone_lines(comparisons),
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
