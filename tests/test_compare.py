from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.comparison.arms import comparisons_of
from harness.comparison.decide import CompareSettings, compare_records
from harness.comparison.noise import noise_floor
from harness.errors import HarnessError
from harness.records.results import Record, load_run
from harness.render.verdicts import summary_sentence


def _rec(model: str, key: str, scale: float, seed: int, n: int = 200, **kw: object) -> Record:
    rng = np.random.default_rng(seed)
    samples = list(scale * 0.01 * np.exp(0.02 * rng.standard_normal(n)))
    return Record(
        case_id=f"{model}/{key}",
        case={"backend": key.split("/")[0]},
        status="ok",
        samples=samples,
        summary={"p50": float(np.median(samples))},
        throughput={"sequences_per_s": 1 / np.mean(samples)},
        **kw,
    )  # type: ignore[arg-type]


def test_verdicts_on_known_shifts() -> None:
    keys = ["eager/b1", "eager/b8", "onnxruntime/b1", "onnxruntime/b8"]
    base = [_rec("A", k, 1.0, i) for i, k in enumerate(keys)]
    cand = [
        _rec("B", keys[0], 1.10, 10),
        _rec("B", keys[1], 1.0, 11),
        _rec("B", keys[2], 0.85, 12),
        _rec("B", keys[3], 1.01, 13, n=8),
    ]
    results = {r.key: r for r in compare_records(base, cand, CompareSettings())}
    assert results["eager/b1"].verdict == "slower"
    assert results["eager/b1"].ci_low > 1.05
    assert results["eager/b8"].verdict == "equivalent"
    assert results["onnxruntime/b1"].verdict == "faster"
    assert results["onnxruntime/b8"].verdict == "inconclusive"  # 8 samples cannot show ±2 %


def test_multiplicity_correction_is_applied() -> None:
    # A small real shift in one of 30 cases: significant alone, not after Holm over the sweep.
    keys = [f"eager/b{i}" for i in range(30)]
    base = [_rec("A", k, 1.0, i, n=40) for i, k in enumerate(keys)]
    cand = [_rec("B", k, 1.0, i, n=40) for i, k in enumerate(keys)]  # the same calls: p = 1
    cand[0] = _rec("B", keys[0], 1.015, 7, n=40)
    raw = {r.key: r for r in compare_records(base, cand, CompareSettings(correction="none"))}
    holm = {r.key: r for r in compare_records(base, cand, CompareSettings(correction="holm"))}
    smallest = min(raw.values(), key=lambda r: r.estimate.p_diff if r.estimate else 1.0)
    assert smallest.key == "eager/b0"
    assert raw["eager/b0"].p_diff_adj < 0.05 <= holm["eager/b0"].p_diff_adj
    p = raw["eager/b0"].estimate.p_diff if raw["eager/b0"].estimate else 1.0
    assert holm["eager/b0"].p_diff_adj == pytest.approx(min(1.0, 30 * p))
    bh = {r.key: r for r in compare_records(base, cand, CompareSettings(correction="bh"))}
    assert raw["eager/b0"].p_diff_adj <= bh["eager/b0"].p_diff_adj <= holm["eager/b0"].p_diff_adj


def test_failed_side_is_invalid() -> None:
    base = [_rec("A", "eager/b1", 1.0, 1)]
    cand = [Record(case_id="B/eager/b1", case={}, status="error", message="boom")]
    (r,) = compare_records(base, cand)
    assert r.verdict == "invalid"


def test_settings_validation() -> None:
    with pytest.raises(HarnessError):
        CompareSettings(margin=0)
    with pytest.raises(HarnessError):
        CompareSettings(correction="fdr")


@pytest.fixture(scope="module")
def intermediate(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, small_corpus: Path
) -> Path:
    out = tmp_path_factory.mktemp("inter") / "xlmr-tiny-nli"
    code = main(
        [
            "train-intermediate",
            "-m",
            "xlmr-tiny",
            "--task",
            "pair-classification",
            "--steps",
            "60",
            "--lr",
            "1e-3",
            "--out",
            str(out),
            "--corpus",
            str(small_corpus),
            "--cache-dir",
            str(cache_dir),
        ]
    )
    assert code == 0
    return out


def test_trained_checkpoint_is_a_real_checkpoint(intermediate: Path, cache_dir: Path) -> None:
    from harness.checkpoints.load import load_checkpoint
    from harness.spec.config import resolve_model

    log = json.loads((intermediate / "training_log.json").read_text())
    assert log["steps"] == 60 and len(log["log"]) == 60
    assert log["last_loss"] < log["first_loss"]  # it learned something
    spec = resolve_model(str(intermediate))
    assert spec.head == "sequence-classification"
    ckpt = load_checkpoint(spec, cache_dir)
    base = load_checkpoint(resolve_model("xlmr-tiny"), cache_dir)
    assert ckpt.arch == base.arch
    assert ckpt.weights.sha256 != base.weights.sha256 == log["baseline_sha256"]


@pytest.mark.parametrize("task", ["span", "multiple-choice"])
def test_other_intermediate_tasks_train(
    task: str, tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    out = tmp_path / task
    assert (
        main(
            [
                "train-intermediate",
                "--task",
                task,
                "--steps",
                "3",
                "--out",
                str(out),
                "--corpus",
                str(small_corpus),
                "--cache-dir",
                str(cache_dir),
            ]
        )
        == 0
    )
    assert (out / "model.safetensors").is_file() and (out / "surrogate.spm.model").is_file()


def test_end_to_end_compare(
    intermediate: Path, cache_dir: Path, small_corpus: Path, tmp_path: Path, deep_x4: Path
) -> None:
    out = tmp_path / "reports"
    code = main(
        [
            "compare",
            "-m",
            "xlmr-tiny",
            "-m",
            str(intermediate),
            "-m",
            str(deep_x4),
            "--aa",
            "-b",
            "onnxruntime",
            "--batch-sizes",
            "4",
            "--seq-lens",
            "64",
            "--threads",
            "1",
            "--languages",
            "heb",
            "--lang-max-len",
            "32",
            "--corpus",
            str(small_corpus),
            "--processes",
            "3",
            "--rounds",
            "4",
            "--max-time",
            "0.2",
            "--cache-dir",
            str(cache_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    run = load_run(run_dir)
    assert run.meta.kind == "compare"
    comps = {c.candidate: c for c in comparisons_of(run, CompareSettings())}
    assert set(comps) == {"xlmr-tiny~aa", "xlmr-tiny-nli", "xlmr-tiny-x4"}
    deep = comps["xlmr-tiny-x4"]
    # Four times the layers: must come out slower, CI excluding 1, on any machine's load.
    synth = next(r for r in deep.results if r.case.get("language") is None)
    assert synth.verdict == "slower" and synth.ci_low > 1.0
    assert "changes inference cost" in summary_sentence(deep)
    nf = noise_floor(comps["xlmr-tiny~aa"])
    assert nf["cases"] == 2
    for rec in run.records:
        assert rec.workload["interleaved"]["rounds"] == 4
    report = (run_dir / "report.md").read_text()
    assert "Noise floor (A/A control)" in report and "xlmr-tiny-x4" in report
    assert (run_dir / "report.html").is_file() and (run_dir / "comparison.json").is_file()
    assert list(run_dir.glob("ratios-*.png"))


def test_compare_two_run_directories(cache_dir: Path, tmp_path: Path) -> None:
    dirs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        assert (
            main(
                [
                    "run",
                    "-m",
                    "xlmr-tiny",
                    "--inline",
                    "--max-time",
                    "0.2",
                    "--cache-dir",
                    str(cache_dir),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        (d,) = out.iterdir()
        dirs.append(d)
    report = tmp_path / "cmp" / "c.md"
    assert main(["compare", str(dirs[0]), str(dirs[1]), "--report", str(report)]) == 0
    assert report.is_file() and json.loads(report.with_suffix(".json").read_text())["results"]
    assert main(["compare", str(dirs[0])]) == 2


def test_summary_sentence_weighs_flags_against_the_aa_noise() -> None:
    from harness.comparison.decide import Comparison

    keys = ["eager/b1", "eager/b8"]
    base = [_rec("A", k, 1.0, i) for i, k in enumerate(keys)]
    cand = [_rec("B", keys[0], 1.08, 20), _rec("B", keys[1], 1.0, 21)]
    cmp = Comparison("A", "B", CompareSettings(), compare_records(base, cand), [])
    assert "changes inference cost" in summary_sentence(cmp)
    assert "changes inference cost" in summary_sentence(cmp, {"max_abs_deviation_pct": 5.0})
    quiet = summary_sentence(cmp, {"max_abs_deviation_pct": 15.0})
    assert "no change in inference cost is shown beyond this machine's noise" in quiet


@pytest.mark.slow
def test_compare_processes_share_the_launchers_watchdog(cache_dir: Path, tmp_path: Path) -> None:
    """A compare process that overruns the group timeout is killed, and its unfinished cases
    are recorded as errors with the reason (the launcher's machinery, not a bare join)."""
    from harness.comparison.arms import run_comparison
    from harness.comparison.spec import InterleaveSpec
    from harness.execution.options import RunOptions
    from harness.spec.config import MeasureSpec
    from harness.spec.sweep import SweepSpec

    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(64,),
        seq_lens=(128,),
        measure=MeasureSpec(max_time_s=600),
    )
    path = run_comparison(
        sweep,
        tmp_path,
        RunOptions(cache_dir=cache_dir, group_timeout_s=8),
        settings=CompareSettings(),
        interleave=InterleaveSpec(rounds=100000),
        aa=True,
        processes=2,
    )
    records = load_run(path).records
    assert len(records) == 4  # 2 arms x 2 processes, all unfinished
    assert all(r.status == "error" for r in records)
    assert {r.message for r in records} == {
        "compare process 0: timed out after 8 s",
        "compare process 1: timed out after 8 s",
    }


def test_processes_of_two_comparisons_are_not_paired() -> None:
    """Two finished compare runs both number their processes 0..P-1; process p of one never
    ran with process p of the other, so they are runs, not pairs."""
    from harness.comparison.decide import estimate_pair

    def rec(model: str, p: int, seed: int, scale: float) -> Record:
        return _rec(model, "eager/b1", scale, 10 * seed + p, n=12,
                    workload={"interleaved": {"process": p, "block": 3, "seed": seed}})  # fmt: skip

    a = [rec("A", p, 1, 1.0) for p in range(4)]
    b = [rec("A", p, 2, 1.0) for p in range(4)]
    est, notes = estimate_pair(a, b)
    assert est is not None and "runs 4/4" in est.level
    assert any("never ran together" in n for n in notes)
    together, _ = estimate_pair(a, [rec("B", p, 1, 1.05) for p in range(4)])
    assert together is not None and "paired rounds" in together.level


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_an_interleaved_arm_measures_what_harness_run_measures(
    backend: str, cache_dir: Path, tmp_path: Path
) -> None:
    """The same case, run alone by `harness run` (before and after) and as the baseline arm of
    a 3-arm comparison: the interleaved p50 within noise of the alone p50. Before the fix the
    interleaved arm ran 1.2-3.6x its p50 alone (ORT's idle arms spinning, the previous arm's
    leftovers counted); the tolerance is wide for a busy CI machine, not for those."""
    from statistics import median

    shape = ["-b", backend, "--batch-sizes", "4", "--seq-lens", "64", "--threads", "1"]
    common = ["--cache-dir", str(cache_dir), "-q"]

    def alone(i: int) -> float:
        out = tmp_path / f"run{i}"
        assert (
            main(["run", "-m", "xlmr-tiny", *shape, "--max-time", "1", "--out", str(out), *common])
            == 0
        )
        (rec,) = load_run(next(out.iterdir())).records
        return float(rec.summary["p50"])

    before = alone(0)
    out = tmp_path / "cmp"
    assert main(["compare", "-m", "xlmr-tiny", "-m", "xlmr-tiny-deep", "--aa", *shape,
                 "--processes", "3", "--rounds", "4", "--out", str(out), *common]) == 0  # fmt: skip
    run = load_run(next(out.iterdir()))
    interleaved = median(
        median(r.samples) for r in run.records if r.model == "xlmr-tiny" and r.status == "ok"
    )
    after = alone(1)
    # The fault this guards against slows the interleaved arm; a fresh AMD EPYC VM once ran
    # the alone case 1.55 and 1.86 ms and the interleaved arm 1.24 ms (a tiny model's calls
    # move with where the process lands), so the check below is one-sided and wide.
    assert 0.6 * min(before, after) <= interleaved <= 1.2 * max(before, after), (
        interleaved,
        before,
        after,
    )
    # Every arm of every case carries its interleaved/alone check over the three processes.
    # Whether it reads "within noise" (±3 %) is a timing, so it is measured, not asserted: the
    # 240/240 of docs/comparing.md comes from `harness compare` trials. CI once saw a check
    # outside ±3 % on a loaded 2-core runner; a ratio off by 2x is the fault itself.
    (cmp,) = [c for c in comparisons_of(run, CompareSettings()) if c.candidate == "xlmr-tiny~aa"]
    checks = [a for r in cmp.results for a in r.alone]
    assert checks and {a.arm for a in checks} == {"xlmr-tiny", "xlmr-tiny~aa"}
    assert all(a.processes == 3 and 0.5 < a.ratio < 2.0 for a in checks), checks


def test_a_machine_whose_speed_swung_in_every_process_still_gets_an_estimate() -> None:
    """The speeds of a gate trial run while other jobs loaded the VM (every process > 25 % off
    the median): nothing is screened, the paired estimate stands and covers the truth (B is
    8 % slower in every round)."""
    from harness.comparison.decide import screened_estimate
    from harness.stats.hierarchy import calls_table

    rng = np.random.default_rng(3)
    swung = [0.62, 1.57, 3.95, 1.58, 1.33, 1.58, 0.61, 0.62, 0.62, 0.75]
    a_tables, b_tables = [], []
    for p, speed in enumerate(swung):
        base = 0.01 * speed * np.exp(rng.normal(0, 0.03, 15))
        a_tables.append(calls_table(base, process=p, block=3))
        b_tables.append(
            calls_table(base * 1.08 * np.exp(rng.normal(0, 0.03, 15)), process=p, block=3)
        )
    est, off = screened_estimate(np.concatenate(a_tables), np.concatenate(b_tables))
    assert off == {}
    assert est.ci_low < 1.08 < est.ci_high and est.ci_low > 1.0
