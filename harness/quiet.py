"""Third-party chatter kept out of the user's console.

transformers logs config notes at WARNING and, from version 5, draws a "Loading weights"
progress bar for every load; the profiler warns once per process. None of it is about the
measurement, and in a sweep it interleaves with the harness's own progress bar.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", message=".*Profiler clears events.*")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
