"""Per-language tables: token statistics, and measured throughput per language."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..textload import LanguageStats

__all__ = ["stats_rows"]


def stats_rows(stats: list[LanguageStats]) -> list[dict[str, str]]:
    return [
        {
            "lang": s.language,
            "sentences": str(s.sentences),
            "tok mean": f"{s.tokens_mean:.1f}",
            "p50": f"{s.tokens_p50:.0f}",
            "p95": f"{s.tokens_p95:.0f}",
            "max": str(s.tokens_max),
            "fertility ×eng": f"{s.fertility_mean:.2f}",
            "fert p50": f"{s.fertility_p50:.2f}",
            "chars/tok": f"{s.chars_per_token:.2f}",
            "unk": f"{100 * s.unk_share:.2f}%",
            "truncated": f"{100 * s.truncation_rate:.1f}%",
            "blank skipped": str(s.blank_skipped),
        }
        for s in stats
    ]
