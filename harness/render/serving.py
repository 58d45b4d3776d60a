"""Serving results as rows and a plot: capacity per case, and latency against offered load."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from harness.records.results import Record
from harness.render.plots import _save

__all__ = ["capacity_rows", "plot_latency_vs_qps", "probe_rows"]


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None or seconds != seconds else f"{1e3 * seconds:.1f}"


def capacity_rows(records: list[Record]) -> list[dict[str, str]]:
    """One row per serving case: capacity (with its bracket), Offline throughput, latencies."""
    rows = []
    for r in records:
        s = r.scenario
        if r.status != "ok" or s.get("kind") != "capacity":
            rows.append(
                {
                    "model": r.model,
                    "backend": str(r.case.get("backend")),
                    "lang": str(r.case.get("language")),
                    "policy": str(r.case.get("policy")),
                    "capacity QPS": r.status,
                    "bracket": r.message[:60],
                }
            )
            continue
        single = s["single_stream"]["latency_s"]
        row = {
            "model": r.model,
            "backend": str(r.case["backend"]),
            "lang": str(r.case["language"]),
            "policy": str(r.case["policy"]),
            "capacity QPS": f"{s['capacity_qps']:.1f}",
            "bracket": f"[{s['capacity_qps']:.1f}, {s['fail_qps']:.1f})",
            f"p{100 * s['percentile']:g} ms": _ms(r.summary.get("p99")),
            "bound ms": _ms(s["bound_s"]),
            "offline QPS": f"{s['offline']['completed_qps']:.1f}",
            "capacity/offline": f"{s['capacity_qps'] / s['offline']['completed_qps']:.0%}"
            if s["offline"]["completed_qps"]
            else "–",
            "1-stream p90 ms": _ms(single.get("p90")),
            "tokens/query": f"{s['traffic']['tokens_mean']:.1f}",
            "probes": str(len(s["probes"])),
        }
        if "cost_per_million" in s:
            row["$/1M req"] = f"{s['cost_per_million']:.3f}"
        if "energy_per_request_j" in s:
            row["J/request"] = f"{s['energy_per_request_j']:.3f}"
        task = r.workload.get("task")
        if task:  # a request is one task unit: say which, and what it took
            row["tokens/query"] = f"{task.get('real_tokens_per_unit', 0):.1f}"
            row["passes/query"] = f"{task.get('forward_passes_per_unit', 1):.2f}"
        rows.append(row)
    if any(r.case.get("task") for r in records):
        rows = [
            {"task": str(r.case.get("task") or "–"), **row}
            for r, row in zip(records, rows, strict=True)
        ]
    return rows


def probe_rows(record: Record) -> list[dict[str, str]]:
    """Every Server run of one capacity search, in the order probed."""
    return [
        {
            "offered QPS": f"{p['target_qps']:.1f}",
            "completed QPS": f"{p['completed_qps']:.1f}",
            "p50 ms": _ms(p["latency_s"]["p50"]),
            "p99 ms": _ms(p["latency_s"]["p99"]),
            "queries": str(p["query_count"]),
            "over bound": str(p["overlatency_count"]),
            "mean batch": f"{p['mean_batch']:.2f}",
            "LoadGen": "VALID" if p["valid"] else "INVALID: " + p["invalid_reason"].strip()[:50],
        }
        for p in record.scenario.get("probes", [])
    ]


def plot_latency_vs_qps(records: list[Record], path: Path) -> Path | None:
    """p50 and p99 latency against offered load, one colour per case, the bound dashed."""
    cases = [r for r in records if r.status == "ok" and r.scenario.get("probes")]
    if not cases:
        return None
    by_label: dict[str, list[tuple[float, float, float, bool]]] = defaultdict(list)
    for r in cases:
        label = f"{r.model} · {r.case['backend']} · {r.case['language']} · {r.case['policy']}"
        for p in r.scenario["probes"]:
            lat = p["latency_s"]
            by_label[label].append(
                (p["target_qps"], 1e3 * lat["p50"], 1e3 * lat["p99"], p["valid"])
            )
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    for label, points in sorted(by_label.items()):
        points.sort()
        (line,) = ax.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=label)
        ax.plot([p[0] for p in points], [p[1] for p in points], ls=":", color=line.get_color())
        bad = [p for p in points if not p[3]]
        ax.scatter([p[0] for p in bad], [p[2] for p in bad], marker="x", color="black", zorder=3)
    bound = 1e3 * cases[0].scenario["bound_s"]
    ax.axhline(bound, ls="--", color="grey", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("offered load (queries/s, Poisson)")
    ax.set_ylabel("latency (ms): p99 solid, p50 dotted")
    ax.set_title(f"Latency against offered load (bound {bound:g} ms; × = LoadGen INVALID)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, path)
