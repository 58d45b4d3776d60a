"""Export a run to other tools' formats: github-action-benchmark's custom JSON, and one flat
row per case (CSV, or Parquet where pyarrow is installed) for notebooks and dashboards.

``customSmallerIsBetter`` carries median latency per case (ms, with the CI as ``range``);
``customBiggerIsBetter`` carries throughput (sequences/s). Both land on the dashboards of
benchmark-action/github-action-benchmark unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records.results import Run

__all__ = ["FORMATS", "flat_rows", "to_github_action_benchmark", "write_table"]

FORMATS = ("gab-smaller", "gab-bigger", "csv", "parquet")


def flat_rows(run: Run) -> list[dict[str, Any]]:
    """One row per case (the latest record), with the columns a notebook wants."""
    rows = []
    for r in sorted(run.latest(), key=lambda r: r.case_id):
        c, s, t, m, g = r.case, r.summary, r.throughput, r.memory, r.gpu
        delta, before = m.get("peak_rss_delta_bytes"), m.get("rss_before_bytes")
        real_text = r.parity.get("real_text") or {}
        rows.append(
            {
                "run_id": run.meta.run_id,
                "case_id": r.case_id,
                "model": r.model,
                "backend": c.get("backend"),
                "options": ";".join(f"{k}={v}" for k, v in c.get("options", [])),
                "device": c.get("device"),
                "dtype": c.get("dtype"),
                "batch": c.get("batch_size"),
                "seq": c.get("seq_len"),
                "threads": c.get("threads"),
                "language": c.get("language"),
                "policy": c.get("policy"),
                "status": r.status,
                "message": r.message,
                "n": s.get("n"),
                "p50_ms": s["p50"] * 1e3 if "p50" in s else None,
                "p90_ms": s["p90"] * 1e3 if "p90" in s else None,
                "p99_ms": s["p99"] * 1e3 if "p99" in s else None,
                "rel_ci": s.get("rel_ci"),
                "unstable": s.get("unstable"),
                "sequences_per_s": t.get("sequences_per_s"),
                "capacity_qps": t.get("capacity_qps"),
                "real_tokens_per_s": t.get("real_tokens_per_s"),
                "share_of_ceiling": t.get("share_of_ceiling"),
                "pad_share": r.workload.get("pad_share"),
                "memory_peak_bytes": before + delta
                if before is not None and delta is not None
                else None,
                "memory_delta_bytes": delta,
                "device_max_allocated_bytes": g.get("max_allocated_bytes"),
                "parity_max_abs_diff": r.parity.get("max_abs_diff"),
                "cosine_mean": real_text.get("cosine_mean", r.parity.get("cosine_mean")),
                "weights_sha256": (r.checkpoint.get("weights") or {}).get("sha256"),
                "tokenizer": r.tokenizer.get("name") or r.tokenizer.get("kind"),
            }
        )
    return rows


def write_table(run: Run, path: Path, kind: str) -> Path:
    """``csv`` with the standard library; ``parquet`` through pyarrow (an optional extra)."""
    rows = flat_rows(run)
    if kind == "csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["case_id"])
            writer.writeheader()
            writer.writerows(rows)
        return path
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise HarnessError(
            "parquet export needs pyarrow: pip install 'xlmr-harness[parquet]' (or use --format csv)"
        ) from None
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def to_github_action_benchmark(run: Run, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in sorted(run.latest(), key=lambda r: r.case_id):
        if r.status != "ok":
            continue
        extra = (
            f"backend={r.case['backend']} batch={r.case['batch_size']} seq={r.case['seq_len']} "
            f"n={r.summary['n']} stop={r.stop_reason} weights={r.checkpoint['weights']['sha256'][:12]}"
        )
        if kind == "gab-smaller":
            p50 = r.summary["p50"] * 1e3
            half = (
                p50 * r.summary["rel_ci"]
                if r.summary.get("rel_ci") not in (None, float("inf"))
                else None
            )
            entry = {
                "name": f"{r.case_id} p50",
                "unit": "ms",
                "value": round(p50, 6),
                "extra": extra,
            }
            if half is not None:
                entry["range"] = f"± {half:.4f}"
            out.append(entry)
        elif kind == "gab-bigger":
            out.append(
                {
                    "name": f"{r.case_id} throughput",
                    "unit": "sequences/s",
                    "value": round(r.throughput["sequences_per_s"], 4),
                    "extra": extra,
                }
            )
        else:
            raise ValueError(f"unknown format {kind!r}")
    return out
