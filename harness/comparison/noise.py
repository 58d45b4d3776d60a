"""What an A/A comparison says about this machine: how far identical arms drift apart."""

from __future__ import annotations

import math
from statistics import median

from harness.comparison.decide import Comparison

__all__ = ["noise_floor"]


def noise_floor(aa: Comparison) -> dict[str, float]:
    """What an A/A comparison says about this machine: how far identical arms drift apart."""
    measured = [r for r in aa.results if r.ratio is not None]
    if not measured:
        return {}
    deviations = [abs(math.log(r.ratio or 1.0)) for r in measured]
    widths = [(r.ci_high or 1) / (r.ci_low or 1) for r in measured]
    alarms = sum(r.verdict in ("faster", "slower") for r in measured)
    return {
        "cases": len(measured),
        "median_abs_deviation_pct": 100 * (math.exp(median(deviations)) - 1),
        "max_abs_deviation_pct": 100 * (math.exp(max(deviations)) - 1),
        "median_ci_halfwidth_pct": 100 * (math.sqrt(median(widths)) - 1),
        "false_alarms": alarms,
        "false_alarm_rate": alarms / len(measured),
        "equivalent": sum(r.verdict == "equivalent" for r in measured),
    }
