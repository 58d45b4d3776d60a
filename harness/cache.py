"""The harness's cache folder: built models, exports, tokenizers and a downloaded corpus.

``$HARNESS_CACHE`` when set, else ``~/.cache/xlmr-harness``. Nothing here creates it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "xlmr-harness"))
