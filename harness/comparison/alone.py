"""Did interleaving move what it measured? Each arm's interleaved p50 against the same arm
timed on its own in the same process (:mod:`harness.comparison.interleave`'s ``solo``).

A comparison whose arms disturb each other can still rank them, but the latencies it reports
would not be what the checkpoints cost, and an asymmetric disturbance (one arm's idle
threads slowing the next) biases the ratio too. So every case of every arm reports the ratio
of its interleaved to its solo p50 (per batch, then averaged), with a t interval over
processes; it is *within noise* unless that interval lies wholly outside ±``tolerance``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.records.results import Record
from harness.stats.summary import by_batch

__all__ = ["TOLERANCE", "AloneCheck", "alone_check"]

#: A disturbance smaller than this is not flagged, however well measured.
TOLERANCE = 0.03


@dataclass(frozen=True, slots=True)
class AloneCheck:
    """Interleaved p50 / solo p50 of one arm on one case."""

    arm: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    processes: int
    tolerance: float = TOLERANCE

    @property
    def within_noise(self) -> bool:
        lo = self.ci_low if self.ci_low is not None else self.ratio
        hi = self.ci_high if self.ci_high is not None else self.ratio
        return not (lo > 1 + self.tolerance or hi < 1 / (1 + self.tolerance))

    def sentence(self) -> str:
        ci = (
            f" (95 % CI {self.ci_low:.3f}–{self.ci_high:.3f}, {self.processes} processes)"
            if self.ci_low is not None and self.ci_high is not None
            else f" ({self.processes} process)"
        )
        what = "within noise" if self.within_noise else "**interleaving moved it**"
        return f"`{self.arm}`: interleaved/alone p50 {self.ratio:.3f}{ci}, {what}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"within_noise": self.within_noise}


def _log_ratio(rec: Record) -> float | None:
    inter = rec.workload.get("interleaved", {})
    solo = inter.get("solo") or []
    if rec.status != "ok" or not solo or not rec.samples:
        return None
    k = int(rec.workload.get("n_batches", 1) or 1)
    a, b = by_batch(solo, k), by_batch(rec.samples, k)
    if len(a) != len(b):
        return None
    return float(
        np.mean(
            [math.log(np.median(y)) - math.log(np.median(x)) for x, y in zip(a, b, strict=False)]
        )
    )


def alone_check(arm: str, records: list[Record]) -> AloneCheck | None:
    """The check over one arm's per-process records of one case (None without solo calls)."""
    logs = np.array([v for r in records if (v := _log_ratio(r)) is not None])
    if not logs.size:
        return None
    mean = float(logs.mean())
    if logs.size < 2:
        return AloneCheck(arm, math.exp(mean), None, None, 1)
    half = float(sps.t.ppf(0.975, logs.size - 1)) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return AloneCheck(
        arm, math.exp(mean), math.exp(mean - half), math.exp(mean + half), int(logs.size)
    )
