"""Peak resident memory of this process during a case, above where it started.

On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the kernel's high-water mark
(``VmHWM``), so the peak is exact and needs no sampling thread (a poller would steal a core
from a 2-core measurement). Elsewhere we fall back to ``ru_maxrss``, which cannot be reset:
the method is recorded so a reader knows which one they got.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PeakRSS", "current_rss"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_rss() -> int:
    value = _status_bytes("VmRSS")
    if value is not None:
        return value
    import psutil

    return int(psutil.Process().memory_info().rss)


def _ru_maxrss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@dataclass
class PeakRSS:
    """``start()`` before the work, ``peak_delta()`` after: bytes of peak RSS above the start."""

    before: int = 0
    method: str = "vmhwm"
    frozen: int | None = None

    def start(self) -> None:
        self.before = current_rss()
        try:
            _CLEAR_REFS.write_text("5")
            self.method = "vmhwm"
        except OSError:
            self.method = "ru_maxrss"

    def peak(self) -> int:
        if self.method == "vmhwm":
            value = _status_bytes("VmHWM")
            if value is not None:
                return value
        return _ru_maxrss()

    def peak_delta(self) -> int:
        if self.frozen is not None:
            return self.frozen
        return max(0, self.peak() - self.before)

    def freeze(self) -> None:
        """Keep the current peak: later work in this process (another arm) must not count."""
        self.frozen = self.peak_delta()
