"""What the user reads, in a real browser: the HTML reports rendered by headless Chromium.

Deselected (not skipped) where no Chromium is installed; `.ci/run` installs Debian's
``chromium`` so CI always runs these."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from harness.cli import main

pytestmark = pytest.mark.browser
FAST = ["--max-time", "0.2", "--inline", "--threads", "1"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "browser tests need chromium (deselected without it)"
    return found


def _render(page: Path, tmp_path: Path) -> tuple[str, Path]:
    """The DOM after Chromium loaded the page, and a full-page screenshot."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", "--window-size=1280,2400", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom, shot


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check_page(page: Path, tmp_path: Path, min_tables: int, min_images: int) -> str:
    markdown = page.with_suffix(".md").read_text(encoding="utf-8")
    dom, shot = _render(page, tmp_path)
    parsed = _Page()
    parsed.feed(dom)
    text = "".join(parsed.text)
    assert "|---" not in text, "a Markdown table was left as raw text"
    assert parsed.tables == len(re.findall(r"^\|---", markdown, flags=re.M)) >= min_tables
    assert len(parsed.images) >= min_images
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        pixels = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    screenshot = imread(shot)
    assert screenshot.shape[0] >= 1000 and screenshot.std() > 0.01  # a page, not a blank
    return text


def test_run_and_compare_reports_render_in_a_browser(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    out = tmp_path / "o"
    common = ["-m", "xlmr-tiny", "-b", "eager", "-b", "onnxruntime", "--seq-lens", "8"]
    text = ["--languages", "deu,tha", "--lang-max-len", "32", "--batch-sizes", "1,4"]
    for _ in range(2):
        args = ["run", *common, *text, "--corpus", str(small_corpus), *FAST]
        assert main([*args, "--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    run_a, run_b = sorted(out.iterdir())
    page_text = _check_page(run_a / "report.html", tmp_path, min_tables=4, min_images=2)
    assert "Cold costs" in page_text and "Per language" in page_text
    report = tmp_path / "cmp" / "comparison.md"
    assert main(["compare", str(run_a), str(run_b), "--report", str(report)]) == 0
    _check_page(report.with_suffix(".html"), tmp_path, min_tables=1, min_images=1)
