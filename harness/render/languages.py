"""Per-language tables: token statistics, and measured throughput per language."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rows import fmt_ms, fmt_rate

if TYPE_CHECKING:
    from ..results import Record
    from ..textload import LanguageStats

__all__ = ["language_result_rows", "stats_rows"]


def stats_rows(stats: list[LanguageStats] | list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for item in stats:
        s = item if isinstance(item, dict) else item.to_dict()
        rows.append(
            {
                "lang": s["language"],
                "sentences": str(s["sentences"]),
                "tok mean": f"{s['tokens_mean']:.1f}",
                "p50": f"{s['tokens_p50']:.0f}",
                "p95": f"{s['tokens_p95']:.0f}",
                "max": str(s["tokens_max"]),
                "fertility ×eng": f"{s['fertility_mean']:.2f}",
                "fert p50": f"{s['fertility_p50']:.2f}",
                "chars/tok": f"{s['chars_per_token']:.2f}",
                "unk": f"{100 * s['unk_share']:.2f}%",
                "truncated": f"{100 * s['truncation_rate']:.1f}%",
                "blank skipped": str(s["blank_skipped"]),
            }
        )
    return rows


def language_result_rows(records: list[Record]) -> list[dict[str, str]]:
    """One row per language case, fastest first within each (model, backend, batch, policy)."""
    rows = [r for r in records if r.status == "ok" and r.case.get("language")]

    def key(r: Record) -> tuple[Any, ...]:
        c = r.case
        return (
            r.model,
            c["backend"],
            c["batch_size"],
            c["policy"],
            -r.throughput["sequences_per_s"],
        )

    return [
        {
            "model": r.model,
            "backend": r.case["backend"],
            "batch": str(r.case["batch_size"]),
            "policy": str(r.case["policy"]),
            "lang": r.case["language"],
            "tok/sentence": f"{r.workload.get('tokens_per_sentence_mean', 0):.1f}",
            "padded len": f"{sum(r.workload.get('padded_len_by_batch', [0])) / max(1, len(r.workload.get('padded_len_by_batch', [1]))):.0f}",
            "pad waste": f"{100 * r.workload.get('pad_share', 0):.0f}%",
            "ms/batch p50": fmt_ms(r.summary.get("p50")),
            "sentences/s": fmt_rate(r.throughput.get("sequences_per_s")),
            "real tok/s": fmt_rate(r.throughput.get("real_tokens_per_s")),
            "truncated": f"{100 * r.workload.get('truncated_share', 0):.1f}%",
        }
        for r in sorted(rows, key=key)
    ]
