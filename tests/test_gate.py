"""The CI gate on runs made with a fake clock: a planted slowdown exits 1, A/A exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.comparison.gate import GateSettings, gate_runs
from harness.errors import HarnessError
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.records.export import to_github_action_benchmark
from harness.records.history import add_run, load_series
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec
from harness.stats.hierarchy import stratified_ratio

from .fakes import FakeTimer

SWEEP = SweepSpec(
    name="gate",
    models=("xlmr-tiny",),
    backends=("eager", "onnxruntime"),
    batch_sizes=(1, 2),
    seq_lens=(8,),
    isolate=False,
    measure=MeasureSpec(warmup_iters=2, min_iters=60, max_iters=60, max_time_s=100),
)


def _fake_run(root: Path, cache_dir: Path, scale: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    noise = 1 + 0.02 * rng.standard_normal(100000)
    timer = FakeTimer(lambda i: 0.010 * scale * float(noise[i]))
    return run_sweep(SWEEP, root, RunOptions(cache_dir=cache_dir, timer=timer))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    return {
        "base": _fake_run(root, cache_dir, 1.0, 1),
        "same": _fake_run(root, cache_dir, 1.0, 2),
        "slow": _fake_run(root, cache_dir, 1.10, 3),
        "fast": _fake_run(root, cache_dir, 0.85, 4),
    }


def _check(runs: dict[str, Path], cand: str, *extra: str) -> int:
    # Raw comparison (the default): the fake clock slows the speed probe too, as a slower
    # machine would, so --normalize has its own tests below.
    return main(["check", "--baseline", str(runs["base"]), "--run", str(runs[cand]), *extra])


def test_planted_slowdown_fails_the_gate(runs: dict[str, Path]) -> None:
    assert _check(runs, "slow") == 1


def test_aa_passes(runs: dict[str, Path]) -> None:
    assert _check(runs, "same") == 0


def test_improvement_passes(runs: dict[str, Path]) -> None:
    assert _check(runs, "fast") == 0


def test_threshold_above_the_slowdown_passes(runs: dict[str, Path]) -> None:
    assert _check(runs, "slow", "--threshold", "0.15") == 0
    assert _check(runs, "slow", "--threshold", "0.15", "--metric", "p50=5%") == 1


def test_gate_rows(runs: dict[str, Path]) -> None:
    rows, warnings = gate_runs(
        load_run(runs["base"]), load_run(runs["slow"]), GateSettings(normalize=False)
    )
    assert warnings == []
    p50 = [r for r in rows if r.metric == "p50"]
    assert len(p50) == 4 and all(r.regression for r in p50)
    assert all(0.07 < r.change < 0.13 for r in p50)
    tput = [r for r in rows if r.metric == "throughput"]
    assert all(r.candidate < r.baseline and r.regression for r in tput)


def test_incomparable_runs_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(runs["same"], other)
    meta = json.loads((other / "run.json").read_text())
    meta["env"]["cpu_model"] = "Some Other CPU"
    (other / "run.json").write_text(json.dumps(meta))
    assert main(["check", "--baseline", str(runs["base"]), "--run", str(other)]) == 2
    with pytest.raises(HarnessError, match="cpu_model differs"):
        gate_runs(load_run(runs["base"]), load_run(other), GateSettings())
    rows, warnings = gate_runs(
        load_run(runs["base"]), load_run(other), GateSettings(), strict=False
    )
    assert warnings and rows


def test_missing_case_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(runs["same"], partial)
    lines = (partial / "records.jsonl").read_text().splitlines()
    (partial / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert main(["check", "--baseline", str(runs["base"]), "--run", str(partial)]) == 2


def test_bad_metric_names() -> None:
    with pytest.raises(HarnessError, match="unknown metric"):
        GateSettings(thresholds={"p42": 0.1})


def test_github_action_benchmark_export(runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs["base"])
    smaller = to_github_action_benchmark(run, "gab-smaller")
    assert len(smaller) == 4
    assert {e["unit"] for e in smaller} == {"ms"}
    assert all(9 < e["value"] < 11 and e["name"].endswith(" p50") for e in smaller)
    bigger = to_github_action_benchmark(run, "gab-bigger")
    assert all(e["unit"] == "sequences/s" and e["value"] > 0 for e in bigger)
    out = tmp_path / "gab.json"
    assert main(["export", str(runs["base"]), "--format", "gab-bigger", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == bigger


def test_history_flags_a_step(runs: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "history"
    order = [
        "base",
        "same",
        "base",
        "same",
        "base",
        "same",
        "slow",
        "slow",
        "slow",
        "slow",
        "slow",
        "slow",
    ]
    for i, name in enumerate(order):
        run = load_run(runs[name])
        run.meta.created = f"2026-01-{i + 1:02d}T00:00:00"
        run.meta.run_id = f"r{i:02d}"
        add_run(store, run)
    series = load_series(store, "p50", "eager/cpu/float32/b1")
    (s,) = series
    assert len(s.values) == 12
    (cp,) = s.change_points
    assert cp.index == 6 and cp.change > 0.05
    assert main(["history", "show", "--store", str(store), "--case", "b1/s8"]) == 0


def _with_calibration(src: Path, dst: Path, factor_from: Path, scale: float) -> Path:
    """A copy of run ``src`` whose speed probes are those of ``factor_from`` times ``scale``."""
    import shutil

    shutil.copytree(src, dst)
    probes = {r.case_id: r.calibration for r in load_run(factor_from).records}
    lines = []
    for line in (dst / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        base = probes[rec["case_id"]]
        rec["calibration"] = {k: v * scale if isinstance(v, float) else v for k, v in base.items()}
        lines.append(json.dumps(rec))
    (dst / "records.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def test_speed_probe_divides_out_a_slower_machine(runs: dict[str, Path], tmp_path: Path) -> None:
    base = str(runs["base"])
    # Candidate 10 % slower and the machine probe says the machine was 10 % slower: pass.
    machine = _with_calibration(runs["slow"], tmp_path / "machine", runs["base"], 1.10)
    assert main(["check", "--baseline", base, "--run", str(machine), "--normalize"]) == 0
    assert main(["check", "--baseline", base, "--run", str(machine)]) == 1  # raw: it is slower
    # Same timings, but the probe saw an unchanged machine: a real regression.
    code = _with_calibration(runs["slow"], tmp_path / "code", runs["base"], 1.0)
    assert main(["check", "--baseline", base, "--run", str(code), "--normalize"]) == 1
    rows, _ = gate_runs(load_run(runs["base"]), load_run(machine), GateSettings(normalize=True))
    assert all(r.speed_factor == pytest.approx(1.10) for r in rows if r.metric != "memory")


def test_every_case_has_a_speed_probe(runs: dict[str, Path]) -> None:
    for rec in load_run(runs["base"]).records:
        assert rec.calibration["matmul_s"] > 0 and rec.calibration["python_s"] > 0


def _replicated_run(root: Path, name: str, scales: list[float], seed: int) -> Path:
    """A run whose case was measured once per entry of ``scales`` (one 'process' each)."""
    from harness.records.results import Record, RunMeta
    from harness.records.store import RunStore

    rng = np.random.default_rng(seed)
    store = RunStore.create(
        root, RunMeta(run_id=name, created="now", kind="sweep", env={"cpu_model": "x"}, config={})
    )
    for i, scale in enumerate(scales):
        samples = list(0.01 * scale * np.exp(0.02 * rng.standard_normal(60)))
        store.append(
            Record(
                case_id="m/eager/cpu/float32/b1/s8/t1",
                case={},
                status="ok",
                samples=samples,
                summary={
                    "p50": float(np.median(samples)),
                    "p90": float(np.percentile(samples, 90)),
                },
                throughput={"sequences_per_s": 1 / float(np.mean(samples))},
                memory={"peak_rss_delta_bytes": 0},
                workload={"repeat": i},
            )
        )
    return store.path


def test_runs_are_the_replicates_when_both_sides_repeat(tmp_path: Path) -> None:
    # Between-run noise of ±15 % (as measured on the shared VM), no real change: pooling the
    # calls would call it a regression; run-level replicates must not.
    base = _replicated_run(tmp_path, "a", [1.0, 0.85, 1.15], 1)
    same = _replicated_run(tmp_path, "b", [1.12, 1.0, 1.18], 2)
    rows, _ = gate_runs(load_run(base), load_run(same), GateSettings())
    assert all(r.level.startswith("runs 3/3") for r in rows if r.metric != "memory")
    assert not any(r.regression for r in rows)
    pooled_a, pooled_b = load_run(base).records, load_run(same).records
    pooled = stratified_ratio(
        [x for r in pooled_a for x in r.samples], [x for r in pooled_b for x in r.samples]
    )
    assert pooled.p_diff < 0.001 and pooled.ratio > 1.05  # what the sample-level test would say


def test_replicated_planted_slowdown_is_caught(tmp_path: Path) -> None:
    base = _replicated_run(tmp_path, "a", [1.0, 1.03, 0.98, 1.01, 0.99], 3)
    slow = _replicated_run(tmp_path, "b", [1.25, 1.22, 1.27, 1.24, 1.26], 4)
    rows, _ = gate_runs(load_run(base), load_run(slow), GateSettings())
    p50 = next(r for r in rows if r.metric == "p50")
    assert p50.regression and p50.level.startswith("runs 5/5") and 0.2 < p50.change < 0.3
    assert main(["check", "--baseline", str(base), "--run", str(slow)]) == 1


def test_replicated_memory_needs_every_run_above(tmp_path: Path) -> None:
    from harness.comparison.gate import _replicate_rows

    base = load_run(_replicated_run(tmp_path, "a", [1.0, 1.0, 1.0], 5))
    cand = load_run(_replicated_run(tmp_path, "b", [1.0, 1.0, 1.0], 6))
    for run, peaks in ((base, [10, 30, 12]), (cand, [28, 29, 31])):
        for rec, mib in zip(run.records, peaks, strict=True):
            rec.memory = {"peak_rss_delta_bytes": mib * 2**20}
    (row,) = [
        r for r in _replicate_rows(base, cand, [], [], GateSettings()) if r.metric == "memory"
    ]
    assert not row.regression  # medians differ (12 → 29 MiB) but one baseline run peaked at 30
    for rec in cand.records:
        rec.memory = {"peak_rss_delta_bytes": 40 * 2**20}
    (row,) = [
        r for r in _replicate_rows(base, cand, [], [], GateSettings()) if r.metric == "memory"
    ]
    assert row.regression


def test_a_p_value_of_exactly_zero_is_the_strongest_evidence(tmp_path: Path) -> None:
    """Old bug: ``p or 1.0`` turned p == 0.0 (Welch at zero variance) into 1.0 and the worst
    regressions passed. Constant runs, 20 % slower: p is exactly 0 and must fail the gate."""
    from harness.records.results import Record, RunMeta
    from harness.records.store import RunStore

    def constant_run(name: str, value: float) -> Path:
        store = RunStore.create(
            tmp_path, RunMeta(run_id=name, created="now", kind="sweep", env={}, config={})
        )
        for i in range(3):
            samples = [value] * 20
            store.append(
                Record(
                    case_id="m/eager/cpu/float32/b1/s8/t1",
                    case={},
                    status="ok",
                    samples=samples,
                    summary={"p50": value, "p90": value},
                    throughput={"sequences_per_s": 1 / value},
                    memory={"peak_rss_delta_bytes": 0},
                    workload={"repeat": i},
                )
            )
        return store.path

    rows, _ = gate_runs(
        load_run(constant_run("a", 0.010)), load_run(constant_run("b", 0.012)), GateSettings()
    )
    p50 = next(r for r in rows if r.metric == "p50")
    assert p50.p_adj == 0.0 and p50.regression


def _tiny_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "t"\nmodels = ["xlmr-tiny"]\nbackends = ["eager"]\nbatch_sizes = [2]\n'
        "seq_lens = [32]\nthreads = 1\n[measure]\nwarmup_iters = 2\nmax_time_s = 0.3\n"
    )
    return suite


@pytest.mark.slow
def test_interleaved_gate_sees_a_deeper_candidate_and_passes_itself(
    tmp_path: Path, cache_dir: Path, deep_x4: Path
) -> None:
    """`harness check --candidate`: both checkpoints in the same job, paired per round.

    The candidate has four times the layers, so a busy test machine cannot hide the
    difference."""
    common = ["--suite", str(_tiny_suite(tmp_path)), "--cache-dir", str(cache_dir)]
    common += ["--processes", "3", "--rounds", "4", "--threshold", "0.15"]
    out = ["--out", str(tmp_path / "o"), "-q"]
    report = tmp_path / "deep.json"
    assert main(["check", "--candidate", str(deep_x4), *common, *out, "--json", str(report)]) == 1
    data = json.loads(report.read_text())
    assert data["counts"]["slower"] == 1
    assert data["results"][0]["level"].startswith("paired rounds, t over 3 processes")
    assert main(["check", "--candidate", "xlmr-tiny", *common, *out]) == 0


def test_one_metric_registry_serves_gate_and_history() -> None:
    from harness.comparison.gate import DEFAULT_THRESHOLDS
    from harness.records.history import METRICS as HISTORY
    from harness.records.metrics import METRICS

    assert set(METRICS) == set(HISTORY)
    # The gate's defaults cover the closed-loop metrics; capacity only applies to serve-bench.
    assert set(DEFAULT_THRESHOLDS) == {n for n, m in METRICS.items() if m.scope == "all"}
    assert METRICS["capacity"].scope == "serving" and METRICS["capacity"].better == "higher"
    assert {m.better for m in METRICS.values()} <= {"lower", "higher"}
    assert METRICS["throughput"].better == "higher" and METRICS["p50"].sample_statistic == "p50"


def test_abba_pairs_cancel_drift_and_see_a_small_slowdown(tmp_path: Path) -> None:
    """Runs drift by ±15 % from pair to pair, but both runs of a pair share it: a 6 %
    slowdown is a regression, the same machine without it is not."""
    from harness.comparison.gate import gate_paired_runs
    from harness.records.results import load_run as load

    drift = [1.0, 1.15, 0.88, 1.07, 0.93]
    base = [_replicated_run(tmp_path, f"a{i}", [d], 10 + i) for i, d in enumerate(drift)]
    slow = [_replicated_run(tmp_path, f"b{i}", [d * 1.06], 20 + i) for i, d in enumerate(drift)]
    same = [_replicated_run(tmp_path, f"c{i}", [d], 30 + i) for i, d in enumerate(drift)]
    rows, _ = gate_paired_runs(
        [(load(a), load(b)) for a, b in zip(base, slow, strict=True)], GateSettings()
    )
    p50 = next(r for r in rows if r.metric == "p50")
    assert p50.regression and 0.04 < p50.change < 0.08 and p50.level == "paired runs (5 pairs)"
    rows, _ = gate_paired_runs(
        [(load(a), load(c)) for a, c in zip(base, same, strict=True)], GateSettings()
    )
    assert not any(r.regression for r in rows)


@pytest.mark.slow
def test_abba_gate_end_to_end_with_one_interpreter(tmp_path: Path, cache_dir: Path) -> None:
    import sys

    suite = _tiny_suite(tmp_path)
    code = main(
        ["check", "--baseline-python", sys.executable, "--pairs", "2", "--suite", str(suite),
         "--cache-dir", str(cache_dir), "--threshold", "0.5", "--out", str(tmp_path / "o"), "-q"]
    )  # fmt: skip
    assert code == 0
    assert len(list((tmp_path / "o" / "abba-a").iterdir())) == 2
    assert len(list((tmp_path / "o" / "abba-b").iterdir())) == 2


def _suite_run(root: Path, name: str, scale: float, repeats: int, seed: int) -> Path:
    """A realistic stored-baseline suite: 24 cases (the CI suite's size), each run
    ``repeats`` times, every run of every case off by its own run-to-run offset (σ = 3 %, as
    measured between runs on the shared VM), calls with 3 % noise around it."""
    from harness.records.results import Record, RunMeta
    from harness.records.store import RunStore

    rng = np.random.default_rng(seed)
    store = RunStore.create(
        root, RunMeta(run_id=name, created="now", kind="sweep", env={"cpu_model": "x"}, config={})
    )
    for case in range(24):
        for i in range(repeats):
            level = 0.01 * (1 + case) * scale * np.exp(0.03 * rng.standard_normal())
            samples = list(level * np.exp(0.03 * rng.standard_normal(40)))
            store.append(
                Record(
                    case_id=f"m/eager/cpu/float32/b{case}/s8/t1",
                    case={},
                    status="ok",
                    samples=samples,
                    summary={
                        "p50": float(np.median(samples)),
                        "p90": float(np.percentile(samples, 90)),
                    },
                    throughput={"sequences_per_s": 1 / float(np.mean(samples))},
                    memory={"peak_rss_delta_bytes": 0},
                    workload={"repeat": i},
                )
            )
    return store.path


def test_a_large_suite_can_fail_and_an_aa_passes(tmp_path: Path) -> None:
    """72 timed rows (24 cases x p50, p90, throughput). The bootstrap's p floor (2/2001) times
    Holm's 72 once made every row pass, even a +50 % slowdown of every case."""
    base = load_run(_suite_run(tmp_path, "base", 1.0, 3, 1))
    slow = load_run(_suite_run(tmp_path, "slow", 1.5, 3, 2))
    same = load_run(_suite_run(tmp_path, "same", 1.0, 3, 3))
    rows, _ = gate_runs(base, slow, GateSettings())
    timed = [r for r in rows if r.metric != "memory"]
    assert len(timed) == 72
    assert sum(r.regression for r in timed) >= 60
    assert all(r.power_claim and r.mde is not None for r in timed)
    rows, _ = gate_runs(base, same, GateSettings())
    assert not any(r.regression for r in rows)
    # one new run against the stored repeats: still runs as the replicate, and it can fail
    one = load_run(_suite_run(tmp_path, "one", 1.5, 1, 4))
    rows, _ = gate_runs(base, one, GateSettings())
    p50 = [r for r in rows if r.metric == "p50"]
    assert all(r.level.startswith("runs 3/1, variance moderated") for r in p50)
    assert sum(r.regression for r in p50) >= 20


def test_single_runs_make_no_power_claim(tmp_path: Path) -> None:
    base = load_run(_suite_run(tmp_path, "b1", 1.0, 1, 5))
    cand = load_run(_suite_run(tmp_path, "c1", 1.0, 1, 6))
    rows, _ = gate_runs(base, cand, GateSettings())
    timed = [r for r in rows if r.metric != "memory"]
    assert timed and not any(r.power_claim or r.mde is not None for r in timed)
    assert all("no run-to-run" in r.level for r in timed)
