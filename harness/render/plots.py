"""Matplotlib figures saved as PNG (Agg backend: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from harness.records.results import Record

__all__ = ["plot_language_latency", "plot_language_throughput", "plot_latency_vs_tokens"]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_latency_vs_tokens(records: list[Record], path: Path) -> Path | None:
    """Median latency against token positions per call, one line per (model, backend)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.status == "ok" and r.case.get("language") is None:
            series[f"{r.model} · {r.case['backend']}"].append(
                (r.workload["positions_per_call"], r.summary["p50"] * 1e3)
            )
    if not series:
        return None
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # "0.6", not "6 × 10⁻¹"
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("token positions per call (batch × seq)")
    ax.set_ylabel("median latency (ms)")
    ax.set_title("Latency against work per call (synthetic inputs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_language_throughput(records: list[Record], path: Path) -> Path | None:
    """Real (non-pad) tokens/s per language, sorted, one bar group per (model, backend, policy)."""
    rows = [r for r in records if r.status == "ok" and r.case.get("language")]
    if not rows:
        return None
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        label = f"{r.model} · {r.case['backend']} · b{r.case['batch_size']} · {r.case['policy']}"
        series[label][str(r.case.get("language"))] = r.throughput["sequences_per_s"]
    first = next(iter(sorted(series)))
    langs = sorted(series[first], key=lambda lang: series[first][lang])
    langs += sorted({lang for s in series.values() for lang in s} - set(langs))
    fig = Figure(figsize=(max(6.0, 0.35 * len(langs) + 2), 4.2))
    ax = fig.subplots()
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(sorted(series.items())):
        xs = [j + i * width for j in range(len(langs))]
        ax.bar(xs, [values.get(lang, 0.0) for lang in langs], width=width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs, rotation=60, fontsize=7)
    ax.set_ylabel("sentences / s")
    ax.set_title("Throughput per language (real Tatoeba sentences)")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_language_latency(records: list[Record], path: Path) -> Path | None:
    """Per-batch latency against real tokens in the batch (each timed batch is a point)."""
    rows = [r for r in records if r.status == "ok" and r.case.get("language")]
    if not rows:
        return None
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    by_backend: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in rows:
        tokens = r.workload.get("real_tokens_by_batch") or []
        if not tokens:
            continue
        xs, ys = by_backend[f"{r.model} · {r.case['backend']}"]
        for i, value in enumerate(r.samples):
            xs.append(tokens[i % len(tokens)])
            ys.append(value * 1e3)
    for label, (xs, ys) in sorted(by_backend.items()):
        ax.scatter(xs, ys, s=6, alpha=0.5, label=label)
    ax.set_xlabel("real tokens in the batch")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency against tokens per batch (all languages)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, path)
