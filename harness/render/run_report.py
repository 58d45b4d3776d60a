"""The report of one run: Markdown + self-contained HTML + PNG plots in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.measure.accuracy import DEFAULT_MIN_COSINE
from harness.records.results import Record, Run
from harness.records.store import write_atomic
from harness.render.cpu import cpu_lines
from harness.render.gpu import gpu_rows, kernel_rows, target_lines
from harness.render.html import markdown_to_html
from harness.render.languages import best_policy_rows, language_result_rows, stats_rows
from harness.render.markdown import md_table
from harness.render.plots import (
    plot_language_latency,
    plot_language_throughput,
    plot_latency_vs_tokens,
)
from harness.render.rows import fmt_bytes, fmt_ms, parity_cell, result_rows, sort_records
from harness.render.tasks import task_lines

__all__ = [
    "checkpoint_rows",
    "damage_lines",
    "environment_lines",
    "write_run_report",
    "write_serve_report",
]


def damage_lines(run: Run) -> list[str]:
    """A warning paragraph when lines of the run's records could not be read."""
    if not run.skipped_lines:
        return []
    return [
        f"> ⚠ {run.skipped_lines} line(s) of `records.jsonl` are not records and were "
        "skipped (a torn write?): their cases are missing here. `harness run --resume` moves "
        "a torn last line aside and measures those cases again.",
        "",
    ]


def environment_lines(env: dict[str, Any]) -> list[str]:
    gpu = f"; GPU {env['gpu_name']} (CUDA {env.get('cuda_version')})" if env.get("gpu_name") else ""
    return [
        f"- Machine: {env.get('cpu_model')} · {env.get('logical_cpus')} logical CPUs "
        f"({env.get('affinity_cpus')} usable) · {env.get('os')} {env.get('machine')}{gpu}",
        f"- Software: Python {env.get('python')} · torch {env.get('torch')} · transformers "
        f"{env.get('transformers')} · onnxruntime {env.get('onnxruntime')} · onnx {env.get('onnx')}",
        f"- Harness: {env.get('xlmr_harness')} at git {env.get('git_sha') or 'unknown'}",
    ]


def checkpoint_rows(records: list[Record]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for r in records:
        ck = r.checkpoint
        if not ck or r.model in seen:
            continue
        w, a = ck["weights"], ck["arch"]
        seen[r.model] = {
            "model": r.model,
            "source": ck["source"],
            "head": ck["head"],
            "layers×hidden": f"{a['layers']}×{a['hidden']}",
            "params": f"{w['n_params'] / 1e6:.1f} M",
            "weights": fmt_bytes(w["param_bytes"]),
            "dtype": ",".join(w["dtypes"]),
            "zeros": f"{100 * w['zero_share']:.3f}%",
            "subnormals": f"{100 * w['subnormal_share']:.4f}%",
            "sha256": w["sha256"][:12],
        }
    return list(seen.values())


def _cold_rows(records: list[Record]) -> list[dict[str, str]]:
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in sort_records(records):
        key = (r.model, r.case["backend"])
        if key in rows or not r.cold:
            continue
        extra: dict[str, object] = dict(r.backend.get("fusions") or {})
        for name in ("fuse_qkv", "compile"):
            if r.backend.get(name) not in (None, False, "none"):
                extra[name] = r.backend[name]
        rows[key] = {
            "model": key[0],
            "backend": key[1],
            "load s": f"{r.cold.get('load_s', 0):.2f}",
            "prepare s": f"{r.cold.get('prepare_s', 0):.2f}",
            "bind/capture s": f"{r.cold['bind_s']:.2f}" if "bind_s" in r.cold else "–",
            "prepare peak RSS": fmt_bytes(r.cold.get("prepare_peak_rss_bytes")),
            "first call ms": fmt_ms(r.cold.get("first_call_s")),
            "parity max diff": parity_cell(r.parity),
            "notes": ", ".join(f"{k} {v}" for k, v in extra.items()) if extra else "",
        }
    return list(rows.values())


def _tokenizer_lines(records: list[Record]) -> list[str]:
    kinds = {
        (r.tokenizer.get("kind"), r.tokenizer.get("name"), r.tokenizer.get("sha256"))
        for r in records
        if r.tokenizer
    }
    lines = []
    for kind, name, sha in sorted(kinds, key=str):
        if kind == "surrogate":
            lines.append(
                f"- Tokenizer: **surrogate** `{name}` (sha256 {str(sha)[:12]}), a SentencePiece "
                "unigram model the harness trained itself; XLM-R's own tokenizer was not available, "
                "so token counts per language differ from XLM-R's."
            )
        elif kind == "checkpoint":
            lines.append(f"- Tokenizer: the checkpoint's own `{name}` (sha256 {str(sha)[:12]}).")
        elif kind == "none":
            lines.append("- Tokenizer: none (synthetic token ids).")
    return lines


def _head_section(run: Run, records: list[Record]) -> list[str]:
    n_ok = sum(r.status == "ok" for r in records)
    return [
        f"# Run `{run.meta.run_id}`",
        "",
        f"{n_ok} of {len(records)} cases measured ok · created {run.meta.created} · "
        f"schema v{run.meta.schema_version}",
        "",
        *damage_lines(run),
        *environment_lines(run.meta.env),
        *_tokenizer_lines(records),
        "",
        "## Checkpoints",
        "",
        md_table(checkpoint_rows(records)),
    ]


def _results_section(records: list[Record]) -> list[str]:
    return [
        "## Results",
        "",
        "Latency is per call (one batch); `±CI` is the half-width of the 95 % CI of the median; "
        "`tok/s` counts real (non-pad) tokens; `memory` is the peak resident memory of the "
        "serving process during the case (weights, runtime arenas and activations; on a GPU, "
        "`dev`: the device allocator's peak) and `Δ memory` its rise above the case's start "
        "(on a GPU, the activations above the weights); `parity` is the max |output − eager "
        "float32|.",
        "",
        md_table(result_rows(records)),
        "## Cold costs",
        "",
        md_table(_cold_rows(records)),
    ]


def _language_sections(records: list[Record], out: Path) -> list[str]:
    lines: list[str] = []
    per_language = language_result_rows(records)
    if per_language:
        lines += [
            "## Per language",
            "",
            "Real Tatoeba sentences (measured half), fastest language first; `pad waste` is the "
            "share of padded positions, `real tok/s` counts only non-pad tokens.",
            "",
            md_table(per_language),
            "### Best policy per language",
            "",
            "Fastest real-token throughput per language, its gain over padding each batch to "
            "its longest sentence, and its share of the no-padding ceiling (the same sentences' "
            "real tokens at their mean length, unpadded, timed on the same backend).",
            "",
            md_table(best_policy_rows(records)),
        ]
    stats_file = out / "languages.json"
    if stats_file.is_file():
        data = json.loads(stats_file.read_text())
        lines += [
            f"## Tokenization per language ({data['tokenizer']['name']})",
            "",
            f"Measured sentences, max length {data['max_len']}; fertility is tokens(lang) / "
            "tokens(English translation), per pair.",
            "",
            md_table(stats_rows(data["languages"])),
        ]
    return lines


def _gpu_sections(records: list[Record]) -> list[str]:
    lines: list[str] = []
    gpu = gpu_rows(sort_records(records))
    if gpu:
        lines += [
            "## GPU: roofline, memory, energy",
            "",
            "TFLOP/s are model FLOPs (`harness.measure.roofline.forward_flops`) at the median "
            "latency; `% peak` is against the data-sheet dense peak for the dtype, `% matmul` "
            "against a large matmul measured on this GPU at the start of the group; the weight "
            "floor is the time to read the non-embedding weights once at the data-sheet "
            "bandwidth.",
            "",
            md_table(gpu),
            *target_lines(records),
            "",
        ]
    kernels = kernel_rows(sort_records(records))
    if kernels:
        lines += [
            "## GPU: where one call's time goes",
            "",
            "One profiled call per case (torch.profiler, after the group's timed cases): "
            "kernels / device milliseconds per kind, read from kernel names "
            "(`harness.measure.kernels`). `busy` is the kernels' summed time, `idle` the rest of "
            "the median call: launch gaps and host work the GPU waited for.",
            "",
            md_table(kernels),
            "",
        ]
    return lines


def _plot_and_warning_sections(records: list[Record], out: Path) -> list[str]:
    lines: list[str] = []
    plots = [
        ("latency.png", plot_latency_vs_tokens(records, out / "latency.png")),
        ("languages.png", plot_language_throughput(records, out / "languages.png")),
        ("language-latency.png", plot_language_latency(records, out / "language-latency.png")),
    ]
    drawn = [name for name, path in plots if path is not None]
    if drawn:
        lines += ["## Plots", ""] + [f"![{name}]({name})\n" for name in drawn]
    unstable = [r for r in records if r.status == "ok" and r.summary.get("warnings")]
    if unstable:
        lines += ["## Stability warnings", ""]
        lines += [f"- `{r.case_id}`: {'; '.join(r.summary['warnings'])}" for r in unstable]
        lines.append("")
    return lines


def write_run_report(
    run: Run, extra_sections: list[str] | None = None, min_cosine: float = DEFAULT_MIN_COSINE
) -> Path:
    """Write ``report.md`` and ``report.html`` (plots as PNG beside them); return the .md path.
    ``min_cosine``: the accuracy floor of the "which to pick" section."""
    records = run.latest()
    lines = [
        *_head_section(run, records),
        *_results_section(records),
        *_language_sections(records, run.path),
        *task_lines(records),
        *cpu_lines(records, min_cosine),
        *_gpu_sections(records),
    ]
    for section in extra_sections or []:
        lines += [section, ""]
    lines += _plot_and_warning_sections(records, run.path)
    return _write_report(run.path, lines, records, f"Run {run.meta.run_id}")


def _write_report(out: Path, lines: list[str], records: list[Record], title: str) -> Path:
    """Close a report with the cases not measured; write ``report.md`` and ``report.html``."""
    failed = [r for r in records if r.status != "ok"]
    if failed:
        lines = [*lines, "## Not measured", ""]
        lines += [f"- `{r.case_id}` **{r.status}**: {r.message}" for r in failed]
        lines.append("")
    text = "\n".join(lines) + "\n"
    md = out / "report.md"
    write_atomic(md, text)
    write_atomic(out / "report.html", markdown_to_html(text, out, title))
    return md


def write_serve_report(run: Run) -> Path:
    """``report.md`` / ``report.html`` of a ``serve-bench`` run, with the latency-vs-load plot."""
    from harness.render.serving import capacity_rows, plot_latency_vs_qps, probe_rows

    records = run.latest()
    out = run.path
    config = run.meta.config.get("serve", {})
    lines = [
        f"# Serving run `{run.meta.run_id}`",
        "",
        f"created {run.meta.created} · schema v{run.meta.schema_version}",
        "",
        *environment_lines(run.meta.env),
        "",
        "## Capacity",
        "",
        f"Highest offered load (Poisson arrivals, MLPerf LoadGen Server) that LoadGen judged "
        f"VALID: p{100 * config.get('percentile', 0.99):g} latency within the bound, its minimum "
        "query count and duration met, and early stopping confident of the percentile. The "
        "bracket's upper end is the lowest load that failed; capacities whose brackets overlap "
        "are not told apart. Offline is LoadGen's Offline scenario through the same batcher "
        f"(max batch {config.get('max_batch')}, max delay {1e3 * config.get('max_delay_s', 0):g}"
        " ms); `1-stream p90` is LoadGen's SingleStream.",
        "",
        md_table(capacity_rows(records)),
    ]
    plot = plot_latency_vs_qps(records, out / "latency-vs-qps.png")
    if plot is not None:
        lines += [
            "## Latency against offered load",
            "",
            "![latency-vs-qps](latency-vs-qps.png)",
            "",
        ]
    lines += ["## Server probes", ""]
    for r in records:
        if r.scenario.get("probes"):
            lines += [f"### `{r.case_id}`", "", md_table(probe_rows(r))]
    return _write_report(out, lines, records, f"Serving run {run.meta.run_id}")
