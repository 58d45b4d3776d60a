"""``harness serve-bench`` end to end on the tiny model, capacity comparisons, bad inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.records.results import load_run

QUICK = [
    "--min-duration",
    "0.2",
    "--min-queries",
    "700",
    "--max-probes",
    "4",
    "--resolution",
    "0.3",
    "--p99",
    # Loose enough that a loaded CI machine's stalls leave at least one valid Server probe.
    "200ms",
    "--max-batch",
    "4",
]


def _serve(out: Path, corpus: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "serve-bench",
        "-m",
        "xlmr-tiny",
        "-b",
        "eager",
        "--corpus",
        str(corpus),
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(out),
        *QUICK,
        *extra,
    ]


@pytest.fixture(scope="module")
def serve_run(
    tmp_path_factory: pytest.TempPathFactory, small_corpus: Path, cache_dir: Path
) -> Path:
    out = tmp_path_factory.mktemp("serve")
    args = _serve(
        out, small_corpus, cache_dir, "--languages", "tha,deu:2+jpn", "--price-per-hour", "0.5"
    )
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_serve_bench_writes_one_capacity_record_per_traffic_and_policy(serve_run: Path) -> None:
    run = load_run(serve_run)
    assert run.meta.kind == "serve"
    records = run.latest()
    assert len(records) == len(run.meta.planned) == 4  # 2 traffics x (longest, bucket)
    assert {r.case_id for r in records} == set(run.meta.planned)
    assert {(r.case["language"], r.case["policy"]) for r in records} == {
        ("tha", "longest"),
        ("tha", "bucket"),
        ("deu:0.667+jpn:0.333", "longest"),
        ("deu:0.667+jpn:0.333", "bucket"),
    }
    for r in records:
        assert r.status == "ok", r.message
        s = r.scenario
        assert s["kind"] == "capacity" and s["loadgen_version"]
        assert s["offline"]["valid"] and s["offline"]["completed_qps"] > 0
        assert s["single_stream"]["latency_s"]["p90"] > 0
        assert 0 < s["capacity_qps"] <= s["offline"]["completed_qps"]
        assert s["capacity_qps"] < s["fail_qps"]
        valid = [p for p in s["probes"] if p["valid"]]
        assert any(p["target_qps"] == s["capacity_qps"] for p in valid)
        for p in valid:
            assert p["early_stopping_met"] and p["latency_s"]["p99"] <= 0.200
            assert p["query_count"] >= 700
        assert s["cost_per_million"] == pytest.approx(0.5 / 3600 / s["capacity_qps"] * 1e6)
        assert r.throughput["capacity_qps"] == s["capacity_qps"]
        assert r.parity["ok"]
    bucketed = next(r for r in records if r.case["policy"] == "bucket")
    assert len(bucketed.scenario["batching"]["edges"]) >= 2
    mix = next(r for r in records if "+" in r.case["language"])
    assert mix.scenario["traffic"]["shares"] == pytest.approx(
        {"deu": 2 / 3, "jpn": 1 / 3}, abs=1e-3
    )


def test_the_serving_report_has_the_capacity_table_and_the_load_plot(serve_run: Path) -> None:
    html = (serve_run / "report.html").read_text()
    assert "data:image/png;base64" in html  # the plot, embedded
    assert (serve_run / "latency-vs-qps.png").stat().st_size > 1000
    md = (serve_run / "report.md").read_text()
    assert "capacity QPS" in md and "$/1M req" in md and "Server probes" in md


def test_report_command_rewrites_a_serving_report(
    serve_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (serve_run / "report.md").unlink()
    assert main(["report", str(serve_run)]) == 0
    assert (serve_run / "report.md").is_file()
    assert "capacity QPS" in capsys.readouterr().out


def test_compare_two_serving_runs_on_capacity(
    serve_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "cmp.md"
    assert main(["compare", str(serve_run), str(serve_run), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "not told apart" in out  # a run against itself: identical brackets
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["metric"] == "capacity" and len(data["comparisons"]) == 4
    assert all(c["ratio"] == pytest.approx(1.0) for c in data["comparisons"])


def test_history_records_capacity_for_serving_runs(serve_run: Path, tmp_path: Path) -> None:
    from harness.records.history import add_run

    entry = json.loads(add_run(tmp_path / "h", load_run(serve_run)).read_text())
    assert all("capacity" in m for m in entry["metrics"].values())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-b", "cuda-graph", "--languages", "tha"], "cannot serve arbitrary shapes"),
        (["--languages", "tha:x"], "is not a number"),
        (["--languages", "tha:0"], "weights must be > 0"),
        (["--languages", "tha+tha"], "appears twice"),
        (["--languages", "xx"], "unknown language"),
        (["--languages", "tha", "--policies", "sorted"], "unknown batching policy"),
        (["--languages", "tha", "--percentile", "1.5"], "--percentile"),
        (["--languages", "tha", "--p99", "fast"], "expected a duration"),
        (["--languages", "tha", "--max-probes", "1"], "--max-probes"),
        (["--languages", "tha", "--price-per-hour", "-1"], "--price-per-hour"),
        (["--languages", "tha", "--resolution", "0"], "--resolution"),
        (["--languages", "tha", "--max-len", "2"], "--max-len"),
        (["--languages", "tha", "--max-batch", "0"], "must be"),
        (["--languages", "tha", "--corpus", "/nonexistent"], "corpus directory not found"),
        (["--languages", "tha", "-m", "no-such-model"], "no-such-model"),
        (["--languages", "tha", "--dtype", "bfloat16", "-b", "onnxruntime"], "float32"),
    ],
)
def test_bad_serving_inputs_exit_2_with_one_line(
    extra: list[str],
    message: str,
    tmp_path: Path,
    small_corpus: Path,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    try:
        code = main(_serve(out, small_corpus, cache_dir, *extra))
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_missing_loadgen_says_which_extra_to_install(
    tmp_path: Path,
    small_corpus: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # import raises ImportError
    code = main(_serve(tmp_path / "out", small_corpus, cache_dir, "--languages", "tha"))
    err = capsys.readouterr().err
    assert code == 2
    assert "xlmr-harness[serve]" in err and len(err.strip().splitlines()) == 1


def test_export_of_a_serving_run_carries_capacity(serve_run: Path) -> None:
    from harness.records.export import flat_rows

    run = load_run(serve_run)
    rows = flat_rows(run)
    assert len(rows) == len(run.latest())
    by_id = {r.case_id: r for r in run.latest()}
    for row in rows:
        assert row["capacity_qps"] == by_id[row["case_id"]].scenario["capacity_qps"]
        assert row["p99_ms"] > 0


def test_resume_finishes_a_serving_run_and_remeasures_nothing(
    tmp_path: Path, small_corpus: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(
            _serve(
                out, small_corpus, cache_dir, "--languages", "de", "--policies", "longest,bucket"
            )
        )
        == 0
    )
    (run_dir,) = out.iterdir()
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    (run_dir / "records.jsonl").write_text(lines[0] + "\n")  # as if killed after one case
    resume = ["serve-bench", "--resume", str(run_dir), "--corpus", str(small_corpus)]
    assert main([*resume, "--cache-dir", str(cache_dir)]) == 0
    run = load_run(run_dir)
    assert [r.case_id for r in run.records] == [json.loads(x)["case_id"] for x in lines]
    assert {r.case_id for r in run.latest()} == set(run.meta.planned)
    assert all("/deu/" in c for c in run.meta.planned)  # "de" is stored as ISO 639-3
    assert main([*resume, "--cache-dir", str(cache_dir)]) == 0  # nothing left: nothing re-run
    assert len(load_run(run_dir).records) == 2
    capsys.readouterr()
    assert main([*resume, "-m", "xlmr-tiny"]) == 2
    assert "drop -m" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_during_serve_bench_loses_and_duplicates_nothing(
    tmp_path: Path, small_corpus: Path, cache_dir: Path
) -> None:
    """serve-bench SIGKILLed at random moments, 20 times, each time resumed: in the end every
    planned serving case once, every line parsable."""
    import random
    import subprocess
    import time

    rng = random.Random(9)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness"]
    first = subprocess.Popen(
        [*cmd, *_serve(out, small_corpus, cache_dir, "--languages", "deu,heb,rus",
                       "--policies", "longest,bucket")],
        cwd=tmp_path, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    while not list(out.glob("*/run.json")) and first.poll() is None:
        time.sleep(0.02)
    first.kill()
    first.wait()
    (run_dir,) = out.iterdir()
    resume = [*cmd, "serve-bench", "--resume", str(run_dir), "--corpus", str(small_corpus),
              "--cache-dir", str(cache_dir), "-q"]  # fmt: skip
    kills = 1
    while kills < 20:
        proc = subprocess.Popen(resume, cwd=tmp_path, stderr=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(1.0, 8.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
            continue
        if proc.returncode == 0:
            break
    assert main(resume[3:]) == 0
    records = [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines()]
    ids = [r["case_id"] for r in records if r["status"] == "ok"]
    assert sorted(ids) == sorted(load_run(run_dir).meta.planned)


def test_task_traffic_serves_one_task_unit_per_request(
    tmp_path: Path, small_corpus: Path, cache_dir: Path
) -> None:
    """A request is one task unit: a question arrives with all its paragraph's windows and is
    answered before it completes; the record names the task and its unit's facts."""
    args = _serve(
        tmp_path, small_corpus, cache_dir, "--languages", "deu", "--tasks", "qa,pairs",
        "--policies", "longest", "--qa-max-len", "128", "--doc-stride", "32",
        "--min-queries", "100", "--max-probes", "3", "--p99", "1s",
    )  # fmt: skip
    assert main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    records = {r.case["task"]: r for r in load_run(run_dir).records}
    assert set(records) == {"qa", "pairs"}
    for task, rec in records.items():
        assert rec.status == "ok", rec.message
        assert f"/task-{task}/deu/" in rec.case_id
        facts = rec.workload["task"]
        assert facts["task"] == task and rec.scenario["kind"] == "capacity"
    assert records["qa"].case["model"]["head"] == "question-answering"
    assert records["pairs"].case["model"]["head"] == "sequence-classification"
    # German paragraphs of ~750 characters at 128-token windows: several windows per question.
    assert records["qa"].workload["task"]["forward_passes_per_unit"] > 1
    assert records["pairs"].workload["task"]["forward_passes_per_unit"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--languages", "deu", "--tasks", "summarize"], "unknown task"),
        (["--languages", "deu+tha", "--tasks", "qa"], "not a mix"),
        (["--languages", "deu", "--tasks", "retrieval"], "retrieval task needs at least 500"),
        (
            [
                "--languages",
                "deu",
                "-b",
                "onnxruntime-int8-static",
                "--backend-option",
                "onnxruntime-int8-static.calibration_languages=xho",
            ],
            "calibration_languages: unknown language 'xho'",
        ),
    ],
)
def test_bad_task_traffic_exits_2_with_one_line(
    extra: list[str],
    message: str,
    tmp_path: Path,
    small_corpus: Path,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert main(_serve(out, small_corpus, cache_dir, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() or not any(out.iterdir())
