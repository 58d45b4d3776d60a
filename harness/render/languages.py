"""Per-language tables: token statistics, and measured throughput per language."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.render.rows import fmt_ms, fmt_rate, options_text

if TYPE_CHECKING:
    from harness.inputs.textload import LanguageStats
    from harness.records.results import Record

__all__ = ["best_policy_rows", "language_result_rows", "stats_rows"]


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
            "lang": str(r.case.get("language")),
            "tok/sentence": f"{r.workload.get('tokens_per_sentence_mean', 0):.1f}",
            "padded len": f"{sum(r.workload.get('padded_len_by_batch', [0])) / max(1, len(r.workload.get('padded_len_by_batch', [1]))):.0f}",
            "pad waste": f"{100 * r.workload.get('pad_share', 0):.0f}%",
            "ms/batch p50": fmt_ms(r.summary.get("p50")),
            "sentences/s": fmt_rate(r.throughput.get("sequences_per_s")),
            "real tok/s": fmt_rate(r.throughput.get("real_tokens_per_s")),
            "ceiling tok/s": fmt_rate(r.throughput.get("ceiling_real_tokens_per_s")),
            "% of ceiling": f"{100 * r.throughput['share_of_ceiling']:.0f}%"
            if "share_of_ceiling" in r.throughput
            else "–",
            "variant": _variant(r),
            "truncated": f"{100 * r.workload.get('truncated_share', 0):.1f}%",
        }
        for r in sorted(rows, key=key)
    ]


def _variant(r: Record) -> str:
    return options_text(r) or "–"


def best_policy_rows(records: list[Record]) -> list[dict[str, str]]:
    """Per (model, backend, batch, language): the policy that served real tokens fastest, by
    how much over padding to the longest, and the share of the no-padding ceiling it reached."""
    groups: dict[tuple[str, str, int, str | None], list[Record]] = {}
    for r in records:
        if r.status == "ok" and r.case.get("language") and "real_tokens_per_s" in r.throughput:
            c = r.case
            groups.setdefault((r.model, c["backend"], c["batch_size"], c["language"]), []).append(r)
    rows = []
    for (model, backend, batch, lang), recs in sorted(groups.items()):
        best = max(recs, key=lambda r: r.throughput["real_tokens_per_s"])
        longest = next((r for r in recs if r.case["policy"] == "longest"), None)
        gain = (
            best.throughput["real_tokens_per_s"] / longest.throughput["real_tokens_per_s"]
            if longest
            else None
        )
        buckets = best.workload.get("buckets") or []
        rows.append(
            {
                "model": model,
                "backend": backend,
                "batch": str(batch),
                "lang": str(lang),
                "best policy": str(best.case["policy"])
                + (f" ({_variant(best)})" if _variant(best) != "–" else ""),
                "× longest": f"{gain:.2f}" if gain else "–",
                "% of ceiling": f"{100 * best.throughput['share_of_ceiling']:.0f}%"
                if "share_of_ceiling" in best.throughput
                else "–",
                "pad waste": f"{100 * best.workload.get('pad_share', 0):.0f}%",
                "bucket pad shares": ", ".join(f"{100 * b['pad_share']:.0f}%" for b in buckets)
                or "–",
            }
        )
    return rows
