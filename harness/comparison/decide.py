"""Pair two sets of records and decide, per case: slower, faster, equivalent, negligible or
inconclusive — a verdict that never contradicts the interval shown next to it.

The effect is estimated where the noise is (:mod:`harness.hierarchy`): for interleaved arms,
from per-round paired log ratios with a bootstrap over processes and rounds; for two separate
runs, from calls resampled within each batch. Then (asv's rule: statistics *and* size):

* **slower / faster** — the 95 % interval excludes 1, the p-value adjusted over the whole
  sweep (Holm, or Benjamini-Hochberg) is below ``alpha``, and the ratio is beyond
  ``min_effect``;
* **equivalent** — the 90 % interval lies inside ``±margin`` (two one-sided tests at 5 %,
  adjusted the same way): "not significantly different" is not "the same";
* **negligible** — a significant change smaller than ``min_effect``;
* **inconclusive** — none of these; the row says the smallest change it could have seen.

``margin ≤ min_effect`` is enforced, so no ratio can be both "equivalent" and "slower".
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from ..env import COMPARABLE_KEYS
from ..errors import HarnessError
from ..hierarchy import Estimate, hierarchical_paired, round_log_ratios, stratified_ratio
from ..record_types import CaseInfo
from ..results import Record
from ..stats import adjust

__all__ = [
    "VERDICTS",
    "CompareSettings",
    "Comparison",
    "PairResult",
    "comparability_problems",
    "compare_records",
    "estimate_pair",
    "hardware_class",
    "merge_records",
    "record_env",
]

VERDICTS = ("faster", "slower", "equivalent", "negligible", "inconclusive", "invalid")
#: Backend settings that identify an export, not how it runs; they may differ between pairs.
_VOLATILE = {"export_key", "exported", "onnx_bytes", "example_shape", "torch_threads"}


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
    key: str
    baseline: str
    candidate: str
    verdict: str
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci90_low: float | None = None
    ci90_high: float | None = None
    #: Smallest change this measurement would detect (90 % power, α = 0.05), relative.
    mde: float | None = None
    #: Tightest ±margin within which the 90 % interval lies (what equivalence could show).
    shown_margin: float | None = None
    #: What was resampled: paired rounds over processes, or calls within batches.
    level: str = ""
    se_log: float | None = None
    var_between: float | None = None
    var_within: float | None = None
    p_diff: float | None = None
    p_equiv: float | None = None
    p_diff_adj: float | None = None
    p_equiv_adj: float | None = None
    p50_baseline: float | None = None
    p50_candidate: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    throughput_ratio: float | None = None
    memory_baseline: int | None = None
    memory_candidate: int | None = None
    case: CaseInfo = field(default_factory=lambda: CaseInfo())
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    baseline: str
    candidate: str
    settings: CompareSettings
    results: list[PairResult]
    warnings: list[str]

    def suite(self) -> Estimate | None:
        """The geometric mean of the measured cases' ratios, with its 95 % interval."""
        from ..hierarchy import suite_estimate

        cases = [
            Estimate(r.ratio, 0, 0, 0, 0, 1, r.se_log, 0, 0, "", 0, 0)
            for r in self.results
            if r.ratio is not None and r.se_log is not None
        ]
        return suite_estimate(cases)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for r in self.results:
            out[r.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "settings": asdict(self.settings),
            "counts": self.counts(),
            "suite": suite.to_dict() if (suite := self.suite()) else None,
            "warnings": self.warnings,
            "results": [r.to_dict() for r in self.results],
        }


def merge_records(records: list[Record]) -> list[Record]:
    """One record per case id; samples of repeated processes (same case id, all ok) pooled."""
    merged: dict[str, Record] = {}
    for rec in records:
        prev = merged.get(rec.case_id)
        if prev is not None and prev.host.get("hardware") != rec.host.get("hardware"):
            raise HarnessError(
                f"{rec.case_id}: measured on different hardware ({prev.host.get('hardware')} "
                f"and {rec.host.get('hardware')}); samples are not pooled across hardware"
            )
        if prev is not None and prev.status == "ok" and rec.status == "ok":
            prev.samples = prev.samples + rec.samples
            prev.workload = prev.workload | {"processes": prev.workload.get("processes", 1) + 1}
        else:
            merged[rec.case_id] = Record.from_dict(rec.to_dict())
    return list(merged.values())


def hardware_class(env: dict[str, Any]) -> str:
    """The hardware a timing belongs to: CPU model and GPU (results never pool across it)."""
    return f"{env.get('cpu_model')} · {env.get('gpu_name') or 'no GPU'}"


def record_env(rec: Record, run_env: dict[str, Any]) -> dict[str, Any]:
    """The environment a record was measured in: its node's (Ray) or else the run's."""
    host_env = rec.host.get("env") if rec.host else None
    return dict(host_env) if host_env else run_env


def comparability_problems(env_a: dict[str, Any], env_b: dict[str, Any]) -> list[str]:
    """Environment facts that make timings incomparable (different CPU, library versions)."""
    return [
        f"{k} differs: {env_a.get(k)!r} vs {env_b.get(k)!r}"
        for k in COMPARABLE_KEYS
        if env_a.get(k) != env_b.get(k)
    ]


def _pair_notes(a: Record, b: Record) -> list[str]:
    notes = []
    sa = {k: v for k, v in a.backend.items() if k not in _VOLATILE}
    sb = {k: v for k, v in b.backend.items() if k not in _VOLATILE}
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


def _verdict(r: PairResult, s: CompareSettings) -> str:
    assert r.ratio is not None and r.p_diff_adj is not None and r.p_equiv_adj is not None
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci90_low is not None and r.ci90_high is not None
    significant = r.p_diff_adj < s.alpha and (r.ci_low > 1 or r.ci_high < 1)
    if significant and r.ci_low > 1 and r.ratio >= 1 + s.min_effect:
        return "slower"
    if significant and r.ci_high < 1 and r.ratio <= 1 / (1 + s.min_effect):
        return "faster"
    inside = 1 / (1 + s.margin) < r.ci90_low and r.ci90_high < 1 + s.margin
    if inside and r.p_equiv_adj < s.alpha:
        return "equivalent"
    if significant:
        return "negligible"
    return "inconclusive"


def _n_batches(rec: Record) -> int:
    return int(rec.workload.get("n_batches", 1) or 1)


def estimate_pair(
    a_runs: list[Record], b_runs: list[Record], *, statistic: str = "p50"
) -> Estimate:
    """The effect of B against A for one case. ``a_runs`` / ``b_runs`` are that case's
    records, one per process: interleaved ones (same processes on both sides) are analysed
    as paired rounds, anything else as calls stratified by batch."""
    procs_a = {r.workload.get("interleaved", {}).get("process"): r for r in a_runs}
    procs_b = {r.workload.get("interleaved", {}).get("process"): r for r in b_runs}
    paired = (
        statistic == "p50"
        and None not in procs_a
        and set(procs_a) == set(procs_b)
        and all(r.workload.get("interleaved", {}).get("block") for r in a_runs)
    )
    if paired:
        per_process = []
        for p in sorted(p for p in procs_a if p is not None):
            ra, rb = procs_a[p], procs_b[p]
            block = int(ra.workload["interleaved"]["block"])
            per_process.append(round_log_ratios(ra.samples, rb.samples, block, _n_batches(ra)))
        if all(len(x) >= 2 for x in per_process):
            return hierarchical_paired(per_process)
    a, b = merge_records(a_runs)[0], merge_records(b_runs)[0]
    return stratified_ratio(a.samples, b.samples, _n_batches(a), statistic=statistic)


def compare_records(
    baseline: list[Record],
    candidate: list[Record],
    settings: CompareSettings | None = None,
    *,
    by: str = "key",
) -> list[PairResult]:
    """Pair by ``key`` (same case, different checkpoints) or ``case_id`` (same checkpoint,
    two runs), compare latency samples, and adjust p-values over all pairs together."""
    s = settings or CompareSettings()
    runs_a: dict[str, list[Record]] = {}
    runs_b: dict[str, list[Record]] = {}
    for side, records in ((runs_a, baseline), (runs_b, candidate)):
        for rec in records:
            side.setdefault(getattr(rec, by), []).append(rec)
    side_a = {getattr(r, by): r for r in merge_records(baseline)}
    side_b = {getattr(r, by): r for r in merge_records(candidate)}
    results: list[PairResult] = []
    for key in [k for k in side_a if k in side_b]:
        a, b = side_a[key], side_b[key]
        res = PairResult(
            key=key,
            baseline=a.model,
            candidate=b.model,
            verdict="invalid",
            case=a.case,
            notes=_pair_notes(a, b),
        )
        if a.status != "ok" or b.status != "ok" or len(a.samples) < 2 or len(b.samples) < 2:
            res.notes.append(f"not measured: baseline {a.status}, candidate {b.status}")
            results.append(res)
            continue
        ok_a = [r for r in runs_a[key] if r.status == "ok"]
        ok_b = [r for r in runs_b[key] if r.status == "ok"]
        est = estimate_pair(ok_a, ok_b)
        res.ratio, res.ci_low, res.ci_high = est.ratio, est.ci_low, est.ci_high
        res.ci90_low, res.ci90_high = est.ci90_low, est.ci90_high
        res.mde, res.shown_margin, res.level = est.mde, est.shown_margin, est.level
        res.se_log = est.se_log
        res.var_between, res.var_within = est.var_between, est.var_within
        res.p_diff, res.p_equiv = est.p_diff, est.p_equiv(s.margin)
        res.p50_baseline = statistics.median(a.samples)
        res.p50_candidate = statistics.median(b.samples)
        res.n_baseline, res.n_candidate = len(a.samples), len(b.samples)
        ta, tb = a.throughput.get("sequences_per_s"), b.throughput.get("sequences_per_s")
        res.throughput_ratio = tb / ta if ta and tb else None
        res.memory_baseline = a.memory.get("peak_rss_delta_bytes")
        res.memory_candidate = b.memory.get("peak_rss_delta_bytes")
        results.append(res)
    measured = [r for r in results if r.ratio is not None]
    for name in ("p_diff", "p_equiv"):
        adjusted = adjust([getattr(r, name) for r in measured], s.correction)
        for r, p in zip(measured, adjusted, strict=True):
            setattr(r, f"{name}_adj", p)
    for r in measured:
        r.verdict = _verdict(r, s)
    return results
