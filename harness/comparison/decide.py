"""Pair two sets of records and decide, per case: slower, faster, equivalent, negligible or
inconclusive — a verdict that never contradicts the interval shown next to it.

The effect is estimated where the noise is (:mod:`harness.stats.hierarchy`): for interleaved arms,
one paired effect per process and a t interval over the processes; for separate runs, runs
as the replicate when repeated, else calls within batches (and the row says that interval
leaves out run-to-run variation). Then (asv's rule: statistics *and* size):

* **slower / faster** — the p-value for "no change", adjusted over the *family* (every case
  of this candidate against the baseline; Holm by default, or Benjamini-Hochberg), is below
  ``alpha`` — so the (1 − alpha) interval shown excludes 1 — and the estimate is beyond
  ``min_effect``;
* **equivalent** — the (1 − 2 alpha) interval (90 % at the default 0.05) lies inside
  ``±margin`` (two one-sided tests at ``alpha``): "not significantly different" is not "the
  same". Equivalence is a claim per
  case at ``alpha``; "equivalent in every case" is an intersection-union test, which needs
  no adjustment (Berger 1982), so equivalence p-values are not adjusted;
* **negligible** — a significant change whose whole (1 − alpha) interval lies inside
  ``±min_effect``;
* **inconclusive** — none of these; the row says why (a change of unsettled size, or the
  tightest margin equivalence could have been shown within).

``margin ≤ min_effect`` is enforced, so no ratio can be both "equivalent" and "slower". Each
row states its power under this rule: the smallest slowdown it would call "slower" with 90 %
probability (:meth:`harness.stats.hierarchy.Estimate.detectable`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from harness.comparison.alone import AloneCheck, alone_check
from harness.comparison.costs import peak_memory, throughput_ratio
from harness.errors import HarnessError
from harness.records.results import Record, merge_records
from harness.records.types import CaseInfo
from harness.stats.hierarchy import (
    CALL_DTYPE,
    DISTURBED,
    Estimate,
    calls_table,
    disturbed,
    process_effects,
    process_means,
    process_paired,
    replicate_ratio,
    stratified_ratio,
    suite_estimate,
    suite_paired,
)
from harness.stats.summary import adjust, by_batch

__all__ = [
    "VERDICTS",
    "VOLATILE_BACKEND_KEYS",
    "CompareSettings",
    "Comparison",
    "PairResult",
    "compare_records",
    "estimate_pair",
    "interleaved_calls",
    "paired_estimate",
    "screened_estimate",
    "verdict_of",
]

VERDICTS = ("faster", "slower", "equivalent", "negligible", "inconclusive", "invalid")
#: Backend settings that identify an export, not how it runs; they may differ between pairs.
VOLATILE_BACKEND_KEYS = frozenset(
    {"export_key", "exported", "onnx_bytes", "example_shape", "torch_threads", "gpu_name",
     "measured_matmul_tflops"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CompareSettings:
    margin: float = 0.02
    min_effect: float = 0.03
    alpha: float = 0.05
    correction: str = "holm"

    def __post_init__(self) -> None:
        if not 0 < self.margin < 1 or not 0 < self.min_effect < 1:
            raise HarnessError("margin and min_effect must be between 0 and 1 (0.02 = 2 %)")
        if not 0 < self.alpha < 0.5:
            raise HarnessError("alpha must be between 0 and 0.5")
        if self.correction not in ("holm", "bh", "none"):
            raise HarnessError("correction must be holm, bh or none")
        if self.margin > self.min_effect:
            raise HarnessError(
                f"margin ({self.margin:g}) must not exceed min_effect ({self.min_effect:g}): a "
                "ratio could then be called both equivalent and slower"
            )


@dataclass
class PairResult:
    """One case of one candidate against the baseline: the estimate and the verdict on it."""

    key: str
    baseline: str
    candidate: str
    verdict: str
    estimate: Estimate | None = None
    #: The p-value for "no change", adjusted over the family (the candidate's cases).
    p_diff_adj: float | None = None
    #: TOST p-value for equivalence within ±margin (a per-case claim, not adjusted: see
    #: the module docstring).
    p_equiv: float | None = None
    #: Smallest slowdown called "slower" with 90 % power under the decision rule, at this
    #: case's noise and the family's Bonferroni level (Holm's worst case).
    mde: float | None = None
    p50_baseline: float | None = None
    p50_candidate: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    throughput_ratio: float | None = None
    memory_baseline: int | None = None
    memory_candidate: int | None = None
    #: Interleaved against solo p50, per arm (interleaved comparisons only).
    alone: list[AloneCheck] = field(default_factory=list)
    #: Each process's paired log effect (interleaved only): what the suite is estimated from.
    per_process: dict[int, float] = field(default_factory=dict)
    #: The level the intervals are shown at: (1 - alpha) for a difference, (1 - 2 alpha)
    #: for equivalence (two one-sided tests), so a verdict never contradicts its interval.
    alpha: float = 0.05
    case: CaseInfo = field(default_factory=lambda: CaseInfo())
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.estimate.ratio if self.estimate else None

    def _interval(self, confidence: float) -> tuple[float, float] | tuple[None, None]:
        return self.estimate.interval(confidence) if self.estimate else (None, None)

    @property
    def ci_low(self) -> float | None:
        return self._interval(1 - self.alpha)[0]

    @property
    def ci_high(self) -> float | None:
        return self._interval(1 - self.alpha)[1]

    @property
    def ci90_low(self) -> float | None:
        """Low end of the equivalence interval (90 % at alpha 0.05)."""
        return self._interval(1 - 2 * self.alpha)[0]

    @property
    def ci90_high(self) -> float | None:
        return self._interval(1 - 2 * self.alpha)[1]

    @property
    def se_log(self) -> float | None:
        return self.estimate.se_log if self.estimate else None

    @property
    def shown_margin(self) -> float | None:
        return self.estimate.margin_shown(1 - 2 * self.alpha) if self.estimate else None

    @property
    def level(self) -> str:
        return self.estimate.level if self.estimate else ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("estimate", "alone", "per_process")
        }
        out["estimate"] = self.estimate.to_dict() if self.estimate else None
        out["alone"] = [a.to_dict() for a in self.alone]
        for name in (
            "ratio",
            "ci_low",
            "ci_high",
            "ci90_low",
            "ci90_high",
            "shown_margin",
            "level",
        ):
            out[name] = getattr(self, name)
        return out


@dataclass
class Comparison:
    baseline: str
    candidate: str
    settings: CompareSettings
    results: list[PairResult]
    warnings: list[str]

    def suite(self) -> Estimate | None:
        """The geometric mean of the measured cases' ratios, with its interval: over the
        processes the cases shared when interleaved (their processes' leanings are common
        to them), else from the cases' standard errors."""
        measured = [r for r in self.results if r.estimate is not None]
        if measured and all(r.per_process for r in measured):
            paired = suite_paired([r.per_process for r in measured])
            if paired is not None:
                return paired
        return suite_estimate([r.estimate for r in measured if r.estimate is not None])

    def counts(self, backend: str | None = None) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for r in self.results:
            if backend is None or r.case.get("backend") == backend:
                out[r.verdict] += 1
        return out

    def backends(self) -> list[str]:
        return list(dict.fromkeys(str(r.case.get("backend")) for r in self.results))

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "settings": asdict(self.settings),
            "counts": self.counts(),
            "counts_by_backend": {b: self.counts(b) for b in self.backends()},
            "suite": suite.to_dict() if (suite := self.suite()) else None,
            "warnings": self.warnings,
            "results": [r.to_dict() for r in self.results],
        }


def _pair_notes(a: Record, b: Record) -> list[str]:
    notes = []
    sa = {k: v for k, v in a.backend.items() if k not in VOLATILE_BACKEND_KEYS}
    sb = {k: v for k, v in b.backend.items() if k not in VOLATILE_BACKEND_KEYS}
    if sa != sb:
        diff = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
        notes.append(
            "backend settings differ: "
            + ", ".join(f"{k} {sa.get(k)!r}→{sb.get(k)!r}" for k in diff)
        )
    if a.case.get("options") != b.case.get("options") and sa == sb:
        notes.append(f"backend options differ: {a.case.get('options')} → {b.case.get('options')}")
    ta, tb = a.tokenizer.get("sha256"), b.tokenizer.get("sha256")
    if ta != tb:
        notes.append("tokenizers differ (real-text workloads are not the same token ids)")
    wa = a.checkpoint.get("arch") if a.checkpoint else None
    wb = b.checkpoint.get("arch") if b.checkpoint else None
    if wa and wb and wa != wb:
        da_, db_ = dict(wa), dict(wb)
        diff = sorted(k for k in da_ if da_[k] != db_.get(k))
        notes.append(
            "architectures differ: " + ", ".join(f"{k} {da_[k]}→{db_.get(k)}" for k in diff)
        )
    da = a.checkpoint.get("weights", {}).get("dtypes") if a.checkpoint else None
    db = b.checkpoint.get("weights", {}).get("dtypes") if b.checkpoint else None
    if da and db and da != db:
        notes.append(f"weight dtypes differ: {da} → {db}")
    if a.checkpoint and b.checkpoint and a.checkpoint.get("head") != b.checkpoint.get("head"):
        notes.append(f"heads differ: {a.checkpoint.get('head')} → {b.checkpoint.get('head')}")
    return notes


def verdict_of(est: Estimate, p_adj: float, s: CompareSettings) -> tuple[str, str | None]:
    """The verdict on one estimate (``p_adj``: its p-value adjusted over the family), and
    why it is inconclusive when it is. Intervals at (1 - alpha), as shown next to it."""
    lr, bound = est.log_ratio, math.log1p(s.min_effect)
    lo, hi = (math.log(x) for x in est.interval(1 - s.alpha))
    significant = p_adj < s.alpha
    if significant and lr >= bound and lo > 0:
        return "slower", None
    if significant and lr <= -bound and hi < 0:
        return "faster", None
    if est.p_equiv(s.margin) < s.alpha:
        return "equivalent", None
    if significant and -bound < lo and hi < bound:
        return "negligible", None
    if significant:
        return "inconclusive", (
            f"changed ({100 * math.expm1(lr):+.1f} %), but the interval reaches past "
            f"±{100 * s.min_effect:g} % on one side and not the other: its size is not settled"
        )
    return "inconclusive", (
        "no change significant after adjustment; equivalence could be shown within "
        f"±{100 * est.margin_shown(1 - 2 * s.alpha):.1f} %, not ±{100 * s.margin:g} %"
    )


def _n_batches(rec: Record) -> int:
    return int(rec.workload.get("n_batches", 1) or 1)


def _process(rec: Record) -> int | None:
    p = rec.workload.get("interleaved", {}).get("process")
    return None if p is None else int(p)


def interleaved_calls(records: list[Record]) -> np.ndarray:
    """The timed calls of interleaved records (one per process) as analysis rows."""
    tables = [
        calls_table(
            r.samples,
            process=int(r.workload["interleaved"]["process"]),
            block=int(r.workload["interleaved"]["block"]),
            n_batches=_n_batches(r),
        )
        for r in records
    ]
    return np.concatenate(tables) if tables else np.empty(0, CALL_DTYPE)


def _per_run(rec: Record) -> float:
    """One number per run: the geometric mean of per-batch medians."""
    strata = by_batch(rec.samples, _n_batches(rec))
    return float(np.exp(np.mean([np.log(np.median(s)) for s in strata])))


def paired_estimate(a: np.ndarray, b: np.ndarray) -> Estimate:
    """Interleaved timed calls of two arms (:data:`harness.stats.hierarchy.CALL_DTYPE` rows)
    → the per-process paired estimate, disturbed processes left out (:func:`screened_estimate`)."""
    return screened_estimate(a, b)[0]


def screened_estimate(a: np.ndarray, b: np.ndarray) -> tuple[Estimate, dict[int, float]]:
    """The paired estimate over the processes that ran at the machine's usual speed, and the
    ones left out with their speed relative to the median process. A process's speed is the
    mean of both arms' log median calls: what the arms share, not their difference."""
    levels = {
        int(p): (
            math.log(float(np.median(a["seconds"][a["process"] == p])))
            + math.log(float(np.median(b["seconds"][b["process"] == p])))
        )
        / 2
        for p in set(np.unique(a["process"]).tolist()) & set(np.unique(b["process"]).tolist())
    }
    off = disturbed(levels)
    effects = process_effects(a, b)
    kept = {p: v for p, v in effects.items() if p not in off}
    med = float(np.median(list(levels.values()))) if levels else 0.0
    return process_paired(kept), {p: math.exp(levels[p] - med) for p in off}


def per_process_effects(a_runs: list[Record], b_runs: list[Record]) -> dict[int, float]:
    """Each shared process's paired log effect for one case (what the suite pools)."""
    return process_means(process_effects(interleaved_calls(a_runs), interleaved_calls(b_runs)))


def estimate_pair(a_runs: list[Record], b_runs: list[Record]) -> tuple[Estimate | None, list[str]]:
    """The effect of B against A for one case, from that case's *measured* records (one per
    process, or one per run), and notes on what was left out or why there is none.

    * interleaved together (one comparison: the same seed): the processes both arms
      completed, paired per round (:func:`harness.stats.hierarchy.process_paired`); fewer than two
      shared → none;
    * separate runs, or processes of separate comparisons, repeated on one side at least:
      runs are the replicate (:func:`harness.stats.hierarchy.replicate_ratio`);
    * one run each: calls within batches (:func:`harness.stats.hierarchy.stratified_ratio`),
      which covers call noise only — the note says so."""
    notes: list[str] = []
    procs_a = {_process(r): r for r in a_runs}
    procs_b = {_process(r): r for r in b_runs}
    seeds = {r.workload.get("interleaved", {}).get("seed") for r in [*a_runs, *b_runs]}
    interleaved = None not in procs_a and None not in procs_b
    # Pairs are rounds both arms ran together: one comparison (one seed), one record per
    # process and arm. Records of two comparisons never ran together.
    together = (
        interleaved and len(seeds) == 1 and len(procs_a) == len(a_runs)
        and len(procs_b) == len(b_runs)
    )  # fmt: skip
    if interleaved and not together:
        notes.append(
            "interleaved in different comparisons: their processes never ran together, so "
            "each process is a run (the interval is over runs, not paired rounds)"
        )
    if together:
        shared = sorted(p for p in procs_a.keys() & procs_b.keys() if p is not None)
        if len(shared) < 2:
            notes.append(
                f"{len(shared)} process(es) measured both arms; the paired analysis needs two "
                "or more (its replicate is the process: --processes)"
            )
            return None, notes
        est, off = screened_estimate(
            interleaved_calls([procs_a[p] for p in shared]),
            interleaved_calls([procs_b[p] for p in shared]),
        )
        if off:
            notes.append(
                "process(es) "
                + ", ".join(f"{p} ({speed:.2f}x)" for p, speed in off.items())
                + f" ran more than {100 * DISTURBED:g} % off the others' speed (a disturbed "
                "machine): left out of the pairs"
            )
        return est, notes
    if len(a_runs) + len(b_runs) >= 3:
        return replicate_ratio([_per_run(r) for r in a_runs], [_per_run(r) for r in b_runs]), notes
    a, b = merge_records(a_runs)[0], merge_records(b_runs)[0]
    notes.append(
        "one run a side: calls are the replicate, so the interval leaves out run-to-run "
        "variation (repeat the runs, --repeat, for an interval over runs)"
    )
    return stratified_ratio(a.samples, b.samples, _n_batches(a)), notes


def compare_records(
    baseline: list[Record],
    candidate: list[Record],
    settings: CompareSettings | None = None,
    *,
    by: str = "key",
) -> list[PairResult]:
    """Pair by ``key`` (same case, different checkpoints) or ``case_id`` (same checkpoint,
    two runs), compare latency samples, and adjust the p-values for a difference over the
    family: every case of this candidate."""
    s = settings or CompareSettings()
    runs_a: dict[str, list[Record]] = {}
    runs_b: dict[str, list[Record]] = {}
    for side, records in ((runs_a, baseline), (runs_b, candidate)):
        for rec in records:
            side.setdefault(getattr(rec, by), []).append(rec)
    results: list[PairResult] = []
    for key in [k for k in runs_a if k in runs_b]:
        ok_a = [r for r in runs_a[key] if r.status == "ok" and len(r.samples) >= 2]
        ok_b = [r for r in runs_b[key] if r.status == "ok" and len(r.samples) >= 2]
        first_a, first_b = (ok_a or runs_a[key])[0], (ok_b or runs_b[key])[0]
        res = PairResult(
            key=key,
            baseline=first_a.model,
            candidate=first_b.model,
            verdict="invalid",
            case=first_a.case,
            notes=_pair_notes(first_a, first_b),
        )
        results.append(res)
        if not ok_a or not ok_b:
            res.notes.append(
                f"not measured: baseline {first_a.status}, candidate {first_b.status}"
                + (
                    f" ({first_b.message or first_a.message})"
                    if first_b.message or first_a.message
                    else ""
                )
            )
            continue
        est, notes = estimate_pair(ok_a, ok_b)
        res.notes += notes
        res.estimate = est
        if est is None:
            res.verdict = "inconclusive"
        a, b = merge_records(ok_a)[0], merge_records(ok_b)[0]
        res.p50_baseline = statistics.median(a.samples)
        res.p50_candidate = statistics.median(b.samples)
        res.n_baseline, res.n_candidate = len(a.samples), len(b.samples)
        res.throughput_ratio = throughput_ratio(ok_a, ok_b)
        res.memory_baseline, res.memory_candidate = peak_memory(ok_a), peak_memory(ok_b)
        res.alone = [
            c for arm, recs in ((a.model, ok_a), (b.model, ok_b)) if (c := alone_check(arm, recs))
        ]
        if est is not None and est.replicates and "paired rounds" in est.level:
            res.per_process = per_process_effects(ok_a, ok_b)
            used = {int(p) for p in est.processes}
            res.per_process = {p: v for p, v in res.per_process.items() if p in used}
    measured = [r for r in results if r.estimate is not None]
    adjusted = adjust([r.estimate.p_diff for r in measured if r.estimate], s.correction)
    # The power statement at the family's level: Bonferroni's, which is Holm's worst case
    # (and conservative for BH); no power claim where calls are the replicate.
    level = s.alpha if s.correction == "none" else s.alpha / max(1, len(measured))
    for r, p in zip(measured, adjusted, strict=True):
        assert r.estimate is not None
        r.alpha = s.alpha
        r.p_diff_adj = p
        r.p_equiv = r.estimate.p_equiv(s.margin)
        r.mde = r.estimate.detectable(level, s.min_effect) if r.estimate.replicates else None
        r.verdict, why = verdict_of(r.estimate, p, s)
        if why:
            r.notes.append(why)
    return results
