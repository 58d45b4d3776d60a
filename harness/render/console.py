"""Rich tables for the terminal."""

from __future__ import annotations

from rich.table import Table

__all__ = ["rich_table"]


def rich_table(rows: list[dict[str, str]], title: str) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    if not rows:
        table.add_column("(no rows)")
        return table
    for col in rows[0]:
        numeric = col not in (
            "model",
            "backend",
            "lang",
            "policy",
            "status",
            "verdict",
            "case",
            "notes",
        )
        if col in ("notes", "status"):  # free text wraps instead of squeezing the numbers
            table.add_column(col, justify="left", max_width=48, overflow="fold")
        else:
            table.add_column(col, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        style = None
        status = row.get("status", "ok")
        if status.startswith(("error", "invalid")):
            style = "red"
        elif status.startswith("skipped") or "unstable" in status:
            style = "yellow"
        table.add_row(*row.values(), style=style)
    return table
