"""A self-contained HTML page from Markdown: images are inlined as data URIs."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import markdown

__all__ = ["markdown_to_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#1b1f24;line-height:1.45}
table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}code{background:#f6f8fa;padding:1px 4px}
h1,h2,h3{border-bottom:1px solid #eee;padding-bottom:.2em}
"""


def markdown_to_html(text: str, base: Path, title: str) -> str:
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])

    def inline(match: re.Match[str]) -> str:
        src = match.group(1)
        path = base / src
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )
