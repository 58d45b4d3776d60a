"""Markdown building blocks."""

from __future__ import annotations

__all__ = ["md_table"]


def md_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_no rows_\n"
    cols = list(rows[0])
    # Pipes in any cell, the header included, would split the row into extra columns and the
    # whole table would render as raw text.
    header = [c.replace("|", "\\|") for c in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"
