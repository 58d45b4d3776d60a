"""The CLI end to end on the tiny model, and the bad-input battery: every user error is one
line on stderr, exit code 2, no traceback, and nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import SCHEMA_VERSION, load_run

REPO = Path(__file__).resolve().parent.parent
FAST = ["--max-time", "0.2", "--inline"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end_run_directory(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "reports"
    code, out, err = _run(
        [
            "run",
            "-m",
            "xlmr-tiny",
            "-b",
            "eager",
            "-b",
            "torchscript",
            "-b",
            "onnxruntime",
            "--batch-sizes",
            "1,2",
            "--seq-lens",
            "8,16",
            "--threads",
            "1",
            "--out",
            str(out_dir),
            "--cache-dir",
            str(cache_dir),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    (run_dir,) = out_dir.iterdir()
    run = load_run(run_dir)
    assert run.meta.schema_version == SCHEMA_VERSION and run.meta.kind == "sweep"
    assert len(run.meta.planned) == 12 and len(run.records) == 12
    for key in ("torch", "onnxruntime", "transformers", "cpu_model", "git_sha", "python"):
        assert key in run.meta.env
    for rec in run.records:
        assert rec.status == "ok", rec.message
        assert rec.samples and rec.warmup and rec.summary["n"] == len(rec.samples)
        assert rec.summary["p50"] <= rec.summary["p90"] <= rec.summary["p99"]
        assert rec.parity["ok"] and rec.parity["max_abs_diff"] <= rec.parity["tolerance"]
        assert rec.cold["prepare_s"] >= 0 and rec.cold["first_call_s"] > 0
        assert rec.checkpoint["weights"]["sha256"] and rec.tokenizer["kind"] == "none"
        assert rec.case["threads"] == 1 and rec.stop_reason in (
            "converged",
            "time_budget",
            "max_iters",
        )
        assert rec.throughput["sequences_per_s"] > 0 and rec.memory["param_bytes"] > 0
    ort = next(r for r in run.records if r.case["backend"] == "onnxruntime")
    assert ort.backend["intra_op_num_threads"] == 1
    assert ort.backend["graph_optimization_level"] == "ORT_ENABLE_ALL"
    for name in ("report.md", "report.html", "latency.png", "records.jsonl", "run.json"):
        assert (run_dir / name).is_file(), name
    report = (run_dir / "report.md").read_text()
    assert "xlmr-tiny" in report and "torchscript" in report
    assert "p50 ms" in out  # the rich table was printed


def test_report_command_rewrites(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "r"
    assert (
        _run(
            ["run", "-m", "xlmr-tiny", "--out", str(out_dir), "--cache-dir", str(cache_dir), *FAST],
            capsys,
        )[0]
        == 0
    )
    (run_dir,) = out_dir.iterdir()
    (run_dir / "report.md").unlink()
    code, _, _ = _run(["report", str(run_dir)], capsys)
    assert code == 0 and (run_dir / "report.md").is_file()


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("models = [")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('batch_sizes = ["one"]\n')
    not_xlmr = tmp_path / "bert"
    not_xlmr.mkdir()
    (not_xlmr / "config.json").write_text(json.dumps({"model_type": "bert"}))
    empty_corpus = tmp_path / "corpus"
    empty_corpus.mkdir()
    (empty_corpus / "tatoeba.deu-eng.deu").write_text("")
    (empty_corpus / "tatoeba.deu-eng.eng").write_text("")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return [
        (["run", "-m", "no-such-model"], "unknown model"),
        (["run", "-m", str(tmp_path / "missing" / "dir")], "no such checkpoint directory"),
        (["run", "-m", str(not_xlmr)], "not an XLM-R checkpoint"),
        (["run", "--sweep", str(tmp_path / "nope.toml")], "file not found"),
        (["run", "--sweep", str(bad_toml)], "not valid TOML"),
        (["run", "--sweep", str(wrong_type)], "batch_sizes must be int"),
        (["run", "-m", "xlmr-tiny", "--batch-sizes", "0"], "batch_sizes must be > 0"),
        (["run", "-m", "xlmr-tiny", "--seq-lens", "-4"], "seq_lens must be > 0"),
        (["run", "-m", "xlmr-tiny", "--seq-lens", "600"], "exceeds what xlmr-tiny allows"),
        (["run", "-m", "xlmr-tiny", "--batch-sizes", "x"], "comma-separated integers"),
        (["run", "-m", "xlmr-tiny", "-b", "tensorrt"], "unknown backend"),
        (
            ["run", "-m", "xlmr-tiny", "--languages", "xx", "--corpus", str(empty_corpus)],
            "unknown language 'xx'",
        ),
        (
            ["run", "-m", "xlmr-tiny", "--languages", "de", "--corpus", str(tmp_path / "nocorpus")],
            "corpus directory not found",
        ),
        (["run", "-m", "xlmr-tiny", "--threads", "0"], "threads must be > 0"),
        (["run", "-m", "xlmr-tiny", "--out", str(blocker / "sub")], "not writable"),
        (["run", "-m", "xlmr-tiny", "--device", "gpu"], "invalid choice"),
        (["run", "-m", "FacebookAI/xlm-roberta-base"], "cannot fetch"),
        (["report", str(tmp_path)], "not a run directory"),
        (["frobnicate"], "invalid choice"),
        (["run", "-m", "xlmr-tiny", "--resume", str(tmp_path)], "not a run directory"),
    ]


def test_bad_input_battery(
    tmp_path: Path,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    cases = _bad_inputs(tmp_path)
    assert len(cases) >= 15
    for args, message in cases:
        out_dir = tmp_path / "out"
        extra = [] if "--out" in args else ["--out", str(out_dir)]
        code, _, err = _run([*args, *extra] if args[0] == "run" else args, capsys)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, err)
        assert "Traceback" not in err
        assert not out_dir.exists() or not any(out_dir.iterdir()), f"half-written output for {args}"


def test_empty_corpus_file_is_an_error_per_case(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tatoeba.deu-eng.deu").write_text("\n\n")
    (corpus / "tatoeba.deu-eng.eng").write_text("\n\n")
    code, _, _ = _run(
        [
            "run",
            "-m",
            "xlmr-tiny",
            "--languages",
            "deu",
            "--no-synthetic",
            "--corpus",
            str(corpus),
            "--out",
            str(tmp_path / "o"),
            "--cache-dir",
            str(cache_dir),
            *FAST,
        ],
        capsys,
    )
    assert code == 0
    (run_dir,) = (tmp_path / "o").iterdir()
    (rec,) = load_run(run_dir).records
    assert rec.status == "error" and "no sentences" in rec.message


def test_module_entry_point_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-m", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model 'nope'")
    assert "Traceback" not in proc.stderr


def test_language_run_writes_statistics_and_tables(
    tmp_path: Path, cache_dir: Path, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    code, _, err = _run(
        [
            "run",
            "-m",
            "xlmr-tiny",
            "--languages",
            "he,ja",
            "--policies",
            "sorted",
            "--batch-sizes",
            "4",
            "--lang-max-len",
            "32",
            "--no-synthetic",
            "--corpus",
            str(small_corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(cache_dir),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    (run_dir,) = out.iterdir()
    stats = json.loads((run_dir / "languages.json").read_text())
    assert {s["language"] for s in stats["languages"]} == {"heb", "jpn"}
    assert stats["tokenizer"]["kind"] == "surrogate"
    report = (run_dir / "report.md").read_text()
    assert "## Per language" in report and "## Tokenization per language" in report
    assert "surrogate" in report and (run_dir / "languages.png").is_file()


def test_backend_options_reach_the_backend(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    code, _, err = _run(
        [
            "run",
            "-m",
            "xlmr-tiny",
            "-b",
            "onnxruntime",
            "--backend-option",
            "onnxruntime.graph_optimization_level=disable",
            "--out",
            str(out),
            "--cache-dir",
            str(cache_dir),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    (run_dir,) = out.iterdir()
    (rec,) = load_run(run_dir).records
    assert rec.backend["graph_optimization_level"] == "ORT_DISABLE_ALL"
    assert rec.case["options"] == [["graph_optimization_level", "disable"]]
    code, _, err = _run(
        [
            "run",
            "-m",
            "xlmr-tiny",
            "-b",
            "onnxruntime",
            "--backend-option",
            "onnxruntime.fast=yes",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "has no option 'fast'" in err
