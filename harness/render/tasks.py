"""XTREME task cases as a table: what one task unit costs per language, against English."""

from __future__ import annotations

from typing import Any

from harness.records.results import Record
from harness.render.rows import fmt_ms

__all__ = ["task_lines", "task_rows"]


def _english_twin(rec: Record, by_key: dict[tuple[Any, ...], Record]) -> Record | None:
    c = rec.case
    lang = str(c.get("language") or "")
    if lang.endswith("@eng"):
        return None
    key = (
        c.get("model", {}).get("name"),
        c.get("backend"),
        c.get("task"),
        c.get("batch_size"),
        f"{lang}@eng",
    )
    return by_key.get(key)


def task_rows(records: list[Record]) -> list[dict[str, str]]:
    """Per task case: ms and units/s per unit, forward passes and tokens per unit, padding,
    answers agreeing with eager float32, and the ratio to the same content in English."""
    ok = [r for r in records if r.status == "ok" and r.workload.get("task")]
    by_key = {
        (r.case.get("model", {}).get("name"), r.case.get("backend"), r.case.get("task"),
         r.case.get("batch_size"), r.case.get("language")): r
        for r in ok
    }  # fmt: skip
    rows = []
    for r in sorted(
        ok,
        key=lambda r: (
            str(r.case.get("task")),
            str(r.case.get("backend")),
            str(r.case.get("language")),
        ),
    ):
        t = r.workload["task"]
        twin = _english_twin(r, by_key)
        ratio = "–"
        if twin is not None:
            ratio = f"{t['ms_per_unit_p50'] / twin.workload['task']['ms_per_unit_p50']:.2f}×"
        search = t.get("search_s_per_unit")
        rows.append(
            {
                "task": str(t.get("task")),
                "backend": str(r.case.get("backend")),
                "lang": str(r.case.get("language")),
                "unit": str(t.get("unit")),
                "per call": f"{t.get('units_per_call', 0):g}",
                "ms / unit": fmt_ms(t["ms_per_unit_p50"] / 1000),
                "units/s": f"{t.get('units_per_s', 0):,.1f}",
                "vs English": ratio,
                "passes / unit": f"{t.get('forward_passes_per_unit', 1):.2f}",
                "tokens / unit": f"{t.get('real_tokens_per_unit', 0):.1f}",
                "pad": f"{100 * t.get('pad_share', 0):.0f}%",
                "search ms / unit": fmt_ms(search) if search is not None else "–",
                "agree": f"{100 * t['agreement']:.1f}%" if "agreement" in t else "–",
            }
        )
    return rows


def task_lines(records: list[Record]) -> list[str]:
    """The report's task section: the table and what drives the ratios to English."""
    from harness.render.markdown import md_table

    rows = task_rows(records)
    if not rows:
        return []
    lines = [
        "## XTREME task shapes per language",
        "",
        "The cost of one task unit — a pair classified, a sentence tagged, a question "
        "answered over all its windows, a query retrieved among the pool — at the median "
        "call, and its ratio to the same content in English (`LANG@eng`, the English side of "
        "the language's own sentences). What drives a ratio: tokens per unit (the language's "
        "tokenization), forward passes per unit (a QA paragraph that tokenizes longer spills "
        "into more windows), and padding. `agree` is the share of answers equal to eager "
        "float32's on the case's own inputs.",
        "",
        md_table(rows),
        "",
    ]
    qa = [r for r in records if r.status == "ok" and r.workload.get("task", {}).get("task") == "qa"]
    for r in qa:
        t = r.workload["task"]
        lang = str(r.case.get("language"))
        if lang.endswith("@eng"):
            continue
        lines.append(
            f"- qa {r.case.get('backend')} {lang}: {t.get('forward_passes_per_unit', 1):.2f} "
            f"windows per question for {t.get('context_chars_per_unit', 0):.0f} characters "
            f"({t.get('context_tokens_per_unit', 0):.0f} context tokens)"
        )
    return [*lines, ""]
