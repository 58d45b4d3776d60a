"""Records → table rows of formatted strings, shared by the console, Markdown and HTML views."""

from __future__ import annotations

from typing import Any

from harness.records.results import Record
from harness.records.types import Parity, case_options

__all__ = [
    "fmt_bytes",
    "fmt_ms",
    "host_label",
    "options_text",
    "parity_cell",
    "result_rows",
    "sort_records",
]


def options_text(r: Record) -> str:
    """A case's backend options as ``k=v,k=v`` (sorted; empty when it has none)."""
    return ",".join(f"{k}={v}" for k, v in sorted(case_options(r.case).items()))


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def sort_records(records: list[Record]) -> list[Record]:
    def key(r: Record) -> tuple[Any, ...]:
        c = r.case
        return (
            r.model,
            c["backend"],
            c.get("language") or "",
            c.get("policy") or "",
            c["batch_size"],
            c["seq_len"],
        )

    return sorted(records, key=key)


def result_row(r: Record) -> dict[str, str]:
    c, s, t = r.case, r.summary, r.throughput
    return {
        "model": r.model,
        "backend": c["backend"],
        "batch": str(c["batch_size"]),
        "seq": str(c["seq_len"]),
        "lang": c.get("language") or "–",
        "policy": (f"task {c['task']}" if c.get("task") else c.get("policy")) or "–",
        "p50 ms": fmt_ms(s.get("p50")),
        "p90 ms": fmt_ms(s.get("p90")),
        "p99 ms": fmt_ms(s.get("p99")),
        "±CI": f"{100 * s['rel_ci']:.1f}%" if s.get("rel_ci") not in (None, float("inf")) else "–",
        "n": str(s.get("n", "–")),
        "seq/s": fmt_rate(t.get("sequences_per_s")),
        "tok/s": fmt_rate(t.get("real_tokens_per_s")),
        "pad": f"{100 * r.workload['pad_share']:.0f}%" if "pad_share" in r.workload else "–",
        **memory_cells(r),
        "parity": parity_cell(r.parity),
        "status": status_cell(r),
    }


def status_cell(r: Record) -> str:
    """``ok``, ``ok, unstable ±47%`` (CI of the median too wide to quote), or the reason."""
    if r.status != "ok":
        return f"{r.status}: {r.message}"[:80]
    rel_ci = r.summary.get("rel_ci")
    unstable = r.summary.get("unstable")
    if unstable is None and isinstance(rel_ci, float):  # records from before the flag
        from harness.stats.summary import is_unstable

        unstable = is_unstable(rel_ci)
    if unstable:
        return f"ok, unstable ±{100 * rel_ci:.0f}%" if isinstance(rel_ci, float) else "ok, unstable"
    return "ok"


def parity_cell(parity: Parity) -> str:
    if parity.get("non_finite"):
        return "non-finite"
    if parity.get("kind") == "approximate":
        facts = parity.get("real_text") or parity
        cos = facts.get("cosine_mean")
        return f"cos {cos:.4f}" if isinstance(cos, float) else "–"
    diff = parity.get("max_abs_diff")
    return f"{diff:.1e}" if isinstance(diff, float) else "–"


def memory_cells(r: Record) -> dict[str, str]:
    """What a user sizing a server reads: on a GPU the device allocator's peak and the
    activations above the weights; on a CPU the process's resident peak during the case
    (weights + runtime arenas + activations) and its rise above the case's start."""
    if r.case.get("device") == "cuda" and "max_allocated_bytes" in r.gpu:
        return {
            "memory": f"{fmt_bytes(r.gpu['max_allocated_bytes'])} dev",
            "Δ memory": f"{fmt_bytes(r.gpu.get('activation_bytes'))} dev",
        }
    delta, before = r.memory.get("peak_rss_delta_bytes"), r.memory.get("rss_before_bytes")
    peak = (
        before + delta
        if isinstance(delta, int | float) and isinstance(before, int | float)
        else None
    )
    return {"memory": fmt_bytes(peak), "Δ memory": fmt_bytes(delta)}


def host_label(record: Record) -> str:
    """Hardware class and library versions of the node a case ran on (``run``: measured where
    the run's own environment says, i.e. locally)."""
    if not record.host:
        return "run"
    env = record.host.get("env") or {}
    names = ("torch", "onnxruntime", "transformers")
    versions = " · ".join(f"{n} {env[n]}" for n in names if env.get(n))
    hardware = str(record.host.get("hardware"))
    return f"{hardware} · {versions}" if versions else hardware


def result_rows(records: list[Record]) -> list[dict[str, str]]:
    ordered = sort_records(records)
    rows = [result_row(r) for r in ordered]
    # Cases measured on a cluster of mixed machines (or software): grouped by where they ran.
    classes = {host_label(r) for r in ordered}
    if len(classes) > 1:
        pairs = sorted(zip(ordered, rows, strict=True), key=lambda p: host_label(p[0]))
        rows = [{"hardware": host_label(r), **row} for r, row in pairs]
    # Drop the language columns when no record has a language: less noise for shape sweeps.
    if all(row["lang"] == "–" for row in rows):
        for row in rows:
            del row["lang"], row["policy"], row["pad"]
    return rows
