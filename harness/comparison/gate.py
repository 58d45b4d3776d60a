"""The CI performance gate: a run against a baseline run, metric by metric.

A regression needs both a statistically significant change (Holm-adjusted across every case
and metric of the suite) and a change beyond the metric's threshold — pytest-benchmark's
``--benchmark-compare-fail=mean:5%`` with asv's significance test in front of it, so noise
alone does not fail a build. Peak memory is one number per case, so it is gated on its
threshold plus an absolute floor.

What the test's replicate is decides what it can see. Repeated runs (``--repeat N``, a
baseline refreshed with repeats) make the *run* the replicate: a t test over runs, whose
power is stated per row. With one run a side only the calls are left; their interval leaves
out run-to-run variation, so those rows make no power claim and say so. Every p-value is
continuous (a t or normal tail, never a resampling count), so a large suite can still fail.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from harness.comparison.decide import VOLATILE_BACKEND_KEYS
from harness.errors import HarnessError
from harness.measure.calibrate import speed_factor
from harness.records.env import comparability_problems
from harness.records.metrics import METRICS
from harness.records.results import Record, Run, merge_records
from harness.records.types import statistic
from harness.stats.hierarchy import (
    Estimate,
    paired_runs_ratio,
    replicate_ratio,
    run_variance,
    stratified_ratio,
    variance_prior,
)
from harness.stats.summary import adjust, by_batch

__all__ = ["DEFAULT_THRESHOLDS", "GateRow", "GateSettings", "gate_paired_runs", "gate_runs"]

DEFAULT_THRESHOLDS = {name: m.default_threshold for name, m in METRICS.items() if m.scope == "all"}
_STATISTIC = {name: m.sample_statistic for name, m in METRICS.items() if m.sample_statistic}


@dataclass(frozen=True)
class GateSettings:
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    alpha: float = 0.05
    correction: str = "holm"
    memory_floor_bytes: int = 4 * 2**20
    #: Divide out the machine speed probe. Off by default: on the shared 2-core VM this was
    #: built on, the probe was noisier than what it was meant to correct (README, CI gate).
    normalize: bool = False

    def __post_init__(self) -> None:
        for metric, value in self.thresholds.items():
            if metric not in DEFAULT_THRESHOLDS:
                raise HarnessError(
                    f"unknown metric {metric!r} (known: {', '.join(DEFAULT_THRESHOLDS)})"
                )
            if not 0 < value < 10:
                raise HarnessError(f"threshold for {metric} must be > 0 (0.05 = 5 %)")


@dataclass
class GateRow:
    case_id: str
    metric: str
    baseline: float
    candidate: float
    change: float  # relative change in the bad direction: +0.07 = 7 % worse
    ci_low: float | None = None
    ci_high: float | None = None
    p_adj: float | None = None
    regression: bool = False
    improvement: bool = False
    level: str = "samples"  # "runs" when both sides had repeated runs of the case
    speed_factor: float | None = None  # machine slower by this for the candidate (probe)
    #: Smallest relative change this row fails with 90 % power under the gate's rule (runs as
    #: the replicate only; None when the row makes no power claim): a gate that cannot see
    #: 5 % says so instead of passing quietly.
    mde: float | None = None
    estimate: Estimate | None = field(default=None, repr=False, compare=False)

    @property
    def power_claim(self) -> bool:
        """Whether the row's interval is over runs (so its power means something)."""
        return self.estimate is not None and self.estimate.replicates > 0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "estimate"}
        out["power_claim"] = self.power_claim
        return out


def _timing_row(key: str, metric: str, base: float, cand: float, c: Estimate) -> GateRow:
    """A latency-based row. ``c`` compares latencies (for throughput: mean latencies), so
    throughput's bad-direction change is ``1 - 1/ratio``: it falls when latency rises."""
    lo, hi = c.interval(0.95)
    if metric == "throughput":
        row = GateRow(key, metric, base, cand, 1 - 1 / c.ratio, 1 - 1 / lo, 1 - 1 / hi, c.p_diff)
    else:
        row = GateRow(key, metric, base, cand, c.ratio - 1, lo - 1, hi - 1, c.p_diff)
    row.level = c.level
    row.estimate = c
    return row


def _sample_rows(a: Record, b: Record, metrics: Sequence[str], normalize: bool) -> list[GateRow]:
    """Rows for the sampled metrics of one run a side. With ``normalize`` (and probes on both
    sides) the candidate's samples are divided by the machine speed factor
    (:mod:`harness.measure.calibrate`) before testing; the displayed values stay raw."""
    rows = []
    factor = speed_factor(a.calibration, b.calibration) if normalize else None
    samples = [x / factor for x in b.samples] if factor else b.samples
    n_batches = int(a.workload.get("n_batches", 1) or 1)
    for metric in metrics:
        # Calls of a real-text case ran different batches: resample within each batch.
        c = stratified_ratio(a.samples, samples, n_batches, statistic=_STATISTIC[metric])
        if metric == "throughput":
            base, cand = a.throughput["sequences_per_s"], b.throughput["sequences_per_s"]
        else:
            base, cand = statistic(a.summary, metric), statistic(b.summary, metric)
        row = _timing_row(a.case_id, metric, base, cand, c)
        row.speed_factor = factor
        rows.append(row)
    return rows


def per_run_statistic(metric: str, samples: Sequence[float], n_batches: int) -> float:
    """One number per run, stratified by batch: the geometric mean of per-batch medians
    (p90s), or for throughput the summed per-batch mean latencies (one pass's time)."""
    strata = by_batch(samples, n_batches)
    if metric == "throughput":
        return float(sum(np.mean(s) for s in strata))
    q = 50 if metric == "p50" else 90
    return float(np.exp(np.mean([np.log(np.percentile(s, q)) for s in strata])))


def _replicate_rows(
    baseline: Run,
    candidate: Run,
    rows: list[GateRow],
    metrics: Sequence[str],
    settings: GateSettings,
) -> list[GateRow]:
    """Replace sample-level rows by run-level ones where both sides repeated the case."""
    runs_a: dict[str, list[Record]] = defaultdict(list)
    runs_b: dict[str, list[Record]] = defaultdict(list)
    for side, run in ((runs_a, baseline), (runs_b, candidate)):
        for rec in run.records:
            if rec.status == "ok" and rec.samples:
                side[rec.case_id].append(rec)
    # Runs are the replicate where one side repeated the case (the other side's variance
    # stands for both when it ran once: a stored baseline of repeats against one new run).
    replicated = {k for k in runs_a if runs_b.get(k) and len(runs_a[k]) + len(runs_b[k]) >= 3}
    gated = [*metrics, "memory"] if "memory" in settings.thresholds else list(metrics)
    out = [r for r in rows if not (r.case_id in replicated and r.metric in gated)]
    per_run: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for key in sorted(replicated):
        n_batches = int(runs_a[key][0].workload.get("n_batches", 1) or 1)
        for metric in metrics:
            per_run[key, metric] = (
                [per_run_statistic(metric, r.samples, n_batches) for r in runs_a[key]],
                [per_run_statistic(metric, r.samples, n_batches) for r in runs_b[key]],
            )
    # A suite has few runs per case but many cases on one machine: each metric's run-to-run
    # variance is moderated over the suite's cases (variance_prior), as the cases agree.
    priors = {}
    for metric in metrics:
        fits = [run_variance(*v) for (_, m), v in per_run.items() if m == metric]
        priors[metric] = variance_prior([f[1] for f in fits], [f[2] for f in fits])
    for key in sorted(replicated):
        for metric in metrics:
            per_a, per_b = per_run[key, metric]
            c = replicate_ratio(per_a, per_b, priors[metric])
            if metric == "throughput":
                base = float(np.mean([r.throughput["sequences_per_s"] for r in runs_a[key]]))
                cand = float(np.mean([r.throughput["sequences_per_s"] for r in runs_b[key]]))
            else:
                base, cand = float(np.mean(per_a)), float(np.mean(per_b))
            out.append(_timing_row(key, metric, base, cand, c))
        if "memory" in settings.thresholds:
            # One peak per run: a regression only if every candidate run peaked above every
            # baseline run by more than the floor, and the medians differ beyond the threshold.
            ma = [float(r.memory.get("peak_rss_delta_bytes", 0)) for r in runs_a[key]]
            mb = [float(r.memory.get("peak_rss_delta_bytes", 0)) for r in runs_b[key]]
            med_a, med_b = float(np.median(ma)), float(np.median(mb))
            change = (med_b - med_a) / med_a if med_a else 0.0
            row = GateRow(key, "memory", med_a, med_b, change, level=f"runs {len(ma)}/{len(mb)}")
            row.regression = (
                min(mb) - max(ma) > settings.memory_floor_bytes
                and change > settings.thresholds["memory"]
            )
            out.append(row)
    return out


def gate_runs(
    baseline: Run, candidate: Run, settings: GateSettings, *, strict: bool = True
) -> tuple[list[GateRow], list[str]]:
    """Rows for every (case, metric) and warnings. Raises :class:`HarnessError` (exit 2) when
    the runs are not comparable, a baseline case is missing, or a candidate case failed."""
    warnings = comparability_problems(baseline.meta.env, candidate.meta.env)
    if warnings and strict:
        raise HarnessError("runs are not comparable: " + "; ".join(warnings))
    side_a = {r.case_id: r for r in merge_records(baseline.records)}
    side_b = {r.case_id: r for r in merge_records(candidate.records)}
    missing = sorted(k for k, r in side_a.items() if r.status == "ok" and k not in side_b)
    if missing:
        raise HarnessError(
            f"candidate run lacks {len(missing)} baseline case(s), e.g. {missing[0]}"
        )
    failed = sorted(k for k in side_a if k in side_b and side_b[k].status != "ok")
    if failed:
        raise HarnessError(
            f"{len(failed)} case(s) failed in the candidate run, e.g. {failed[0]}: "
            f"{side_b[failed[0]].message}"
        )
    settings_differ = sorted(
        {
            k
            for key, a in side_a.items()
            if (b := side_b.get(key)) is not None and a.status == "ok" and b.status == "ok"
            for k in set(a.backend) | set(b.backend)
            if k not in VOLATILE_BACKEND_KEYS and a.backend.get(k) != b.backend.get(k)
        }
    )
    if settings_differ:
        warnings.append(
            "backend settings differ between the runs (" + ", ".join(settings_differ) + "): "
            "the baseline may have been measured with other settings; refresh it"
        )
    metrics = [m for m in ("p50", "p90", "throughput") if m in settings.thresholds]
    rows: list[GateRow] = []
    for key, a in side_a.items():
        b = side_b.get(key)
        if b is None or a.status != "ok" or len(a.samples) < 2 or len(b.samples) < 2:
            continue
        rows += _sample_rows(a, b, metrics, settings.normalize)
        if "memory" in settings.thresholds:
            ma = a.memory.get("peak_rss_delta_bytes", 0)
            mb = b.memory.get("peak_rss_delta_bytes", 0)
            change = (mb - ma) / ma if ma else 0.0
            rows.append(
                GateRow(
                    key,
                    "memory",
                    ma,
                    mb,
                    change,
                    regression=mb - ma > settings.memory_floor_bytes
                    and change > settings.thresholds["memory"],
                )
            )
    rows = _replicate_rows(baseline, candidate, rows, metrics, settings)
    _decide(rows, settings)
    return rows, warnings


def _decide(rows: list[GateRow], settings: GateSettings) -> None:
    """Holm (or BH) over every tested row, then regression / improvement: significant, an
    interval that excludes "no change", and a change beyond the metric's threshold. Each row
    with runs as its replicate states the change it would fail with 90 % power."""
    tested = [r for r in rows if r.p_adj is not None]
    # (``r.p_adj or 1.0`` once turned the most significant regressions, p == 0.0, into 1.0.)
    raw = [r.p_adj for r in tested if r.p_adj is not None]
    for row, p in zip(tested, adjust(raw, settings.correction), strict=True):
        row.p_adj = p
        limit = settings.thresholds[row.metric]
        excludes = row.ci_low is None or row.ci_high is None or row.ci_low > 0 or row.ci_high < 0
        significant = p < settings.alpha and excludes
        row.regression = significant and row.change > limit
        row.improvement = significant and row.change < -limit
        if row.power_claim and row.estimate is not None:
            level = (
                settings.alpha if settings.correction == "none" else settings.alpha / len(tested)
            )
            if row.metric == "throughput":  # fails when 1 - 1/ratio > limit: ratio > 1/(1-limit)
                mde = row.estimate.detectable(level, 1 / (1 - limit) - 1)
                row.mde = 1 - 1 / (1 + mde)
            else:
                row.mde = row.estimate.detectable(level, limit)


def gate_paired_runs(
    pairs: list[tuple[Run, Run]], settings: GateSettings
) -> tuple[list[GateRow], list[str]]:
    """Baseline and candidate runs made alternately in the same job (ABBA), one pair per
    position: the replicate is the pair, and each pair's log ratio cancels the drift the two
    shared. A one-sample t interval over the pairs; Holm over every (case, metric) row."""
    if len(pairs) < 2:
        raise HarnessError("a paired gate needs at least 2 pairs of runs")
    warnings = sorted({w for a, b in pairs for w in comparability_problems(a.meta.env, b.meta.env)})
    metrics = [m for m in ("p50", "p90", "throughput") if m in settings.thresholds]
    per_pair = []
    for a, b in pairs:
        ra = {r.case_id: r for r in a.latest() if r.status == "ok" and len(r.samples) >= 2}
        rb = {r.case_id: r for r in b.latest() if r.status == "ok" and len(r.samples) >= 2}
        per_pair.append((ra, rb))
    keys = sorted(set.intersection(*(set(ra) & set(rb) for ra, rb in per_pair)))
    if not keys:
        raise HarnessError("the paired runs share no measured case")
    rows: list[GateRow] = []
    for key in keys:
        n_batches = int(per_pair[0][0][key].workload.get("n_batches", 1) or 1)
        for metric in metrics:
            va = [per_run_statistic(metric, ra[key].samples, n_batches) for ra, _ in per_pair]
            vb = [per_run_statistic(metric, rb[key].samples, n_batches) for _, rb in per_pair]
            c = paired_runs_ratio(va, vb)
            rows.append(_timing_row(key, metric, float(np.mean(va)), float(np.mean(vb)), c))
    _decide(rows, settings)
    return rows, warnings
