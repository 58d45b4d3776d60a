"""The CLI end to end on the tiny model, and the bad-input battery: every user error is one
line on stderr, exit code 2, no traceback, and nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.records.results import SCHEMA_VERSION, load_run

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


def _broken_checkpoints(tmp_path: Path, cache_dir: Path) -> dict[str, Path]:
    """Copies of the tiny model's checkpoint, each broken one way."""
    import shutil

    from harness.checkpoints.load import build_random_init
    from harness.spec.config import resolve_model

    good = build_random_init(resolve_model("xlmr-tiny"), cache_dir)
    out: dict[str, Path] = {}

    def copy(name: str) -> Path:
        out[name] = tmp_path / "ckpt" / name
        shutil.copytree(good, out[name])
        return out[name]

    weights = good / "model.safetensors"
    d = copy("pickle-only")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    d = copy("truncated")
    (d / "model.safetensors").write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    d = copy("garbage")
    (d / "model.safetensors").write_bytes(b"\x13\x37" * 5000)
    d = copy("no-weights")
    (d / "model.safetensors").unlink()
    d = copy("vocab-mismatch")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(config | {"vocab_size": config["vocab_size"] + 7}))
    d = copy("custom-code")
    (d / "config.json").write_text(
        json.dumps(config | {"auto_map": {"AutoModel": "modeling_mine.MyXLMR"}})
    )
    d = copy("bad-json")
    (d / "config.json").write_text("{not json")
    return out


def _bad_inputs(tmp_path: Path, cache_dir: Path) -> list[tuple[list[str], str]]:
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
    ragged = tmp_path / "ragged"
    ragged.mkdir()
    (ragged / "tatoeba.deu-eng.deu").write_text("Eins.\nZwei.\n")
    (ragged / "tatoeba.deu-eng.eng").write_text("One.\n")
    latin1 = tmp_path / "latin1"
    latin1.mkdir()
    (latin1 / "tatoeba.deu-eng.deu").write_bytes("Grüße.\n".encode("latin-1"))
    (latin1 / "tatoeba.deu-eng.eng").write_text("Greetings.\n")
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "tatoeba.deu-eng.deu").write_text("\n\n")
    (blank / "tatoeba.deu-eng.eng").write_text("\n\n")
    ck = _broken_checkpoints(tmp_path, cache_dir)
    text = ["--languages", "deu", "--corpus"]
    return [
        (["run", "-m", str(ck["pickle-only"])], "only pickle weights"),
        (["run", "-m", str(ck["truncated"])], "weights file is truncated"),
        (["run", "-m", str(ck["garbage"])], "not a safetensors file"),
        (["run", "-m", str(ck["no-weights"])], "no weights file"),
        (
            ["run", "-m", str(ck["vocab-mismatch"])],
            "word embeddings are [8000, 64], but config.json says vocabulary 8007",
        ),
        (["run", "-m", str(ck["custom-code"])], "asks for custom code (auto_map)"),
        (["run", "-m", str(ck["bad-json"])], "not readable JSON"),
        (["run", "-m", "xlmr-tiny", *text, str(ragged)], "not parallel"),
        (["run", "-m", "xlmr-tiny", *text, str(latin1)], "not UTF-8"),
        (["run", "-m", "xlmr-tiny", *text, str(blank)], "no sentences"),
        (["run", "-m", "xlmr-tiny", "--languages", "deu", "--no-synthetic"], "no Tatoeba corpus"),
        (["run", "--sweep", "no-such-sweep"], "unknown sweep 'no-such-sweep'"),
        (
            ["run", "-m", "xlmr-tiny", "--backend-option", "eager.turbo=yes"],
            "has no option 'turbo'",
        ),
        (["run", "-m", "xlmr-tiny", "--backend-option", "eager"], "expects BACKEND.KEY=VALUE"),
        (["run", "-m", "xlmr-tiny", "--max-time", "-1"], "max_time_s must be > 0"),
        (
            ["run", "-m", "xlmr-tiny", "-b", "onnxruntime", "--dtype", "float16"],
            "runs float32 on cpu, not float16",
        ),
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
        (["run", "-m", "FacebookAI/xlm-roberta-base"], "is not cached"),
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
    monkeypatch.delenv("HARNESS_TATOEBA", raising=False)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "empty-cache"))
    cases = _bad_inputs(tmp_path, cache_dir)
    assert len(cases) >= 35
    for args, message in cases:
        out_dir = tmp_path / "out"
        extra = [] if "--out" in args else ["--out", str(out_dir)]
        if args[0] == "run":
            extra += ["--cache-dir", str(cache_dir)]
        code, _, err = _run([*args, *extra] if args[0] == "run" else args, capsys)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, err)
        assert "Traceback" not in err
        assert not out_dir.exists() or not any(out_dir.iterdir()), f"half-written output for {args}"


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


def test_a_run_with_failed_cases_exits_3_and_lists_them(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN weights: eager's own outputs are non-finite, so every case is invalid and says so."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from harness.checkpoints.load import build_random_init
    from harness.spec.config import resolve_model

    ckpt = tmp_path / "nan-ckpt"
    shutil.copytree(build_random_init(resolve_model("xlmr-tiny"), cache_dir), ckpt)
    tensors = load_file(ckpt / "model.safetensors")
    name = next(k for k in tensors if k.endswith("LayerNorm.weight"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "o"
    args = ["run", "-m", str(ckpt), "--out", str(out), "--cache-dir", str(cache_dir), *FAST]
    code, stdout, err = _run(args, capsys)
    assert code == 3, err
    (run_dir,) = out.iterdir()
    (rec,) = load_run(run_dir).records
    assert rec.status == "invalid" and "non-finite outputs" in rec.message
    assert rec.parity["max_abs_diff"] is None and rec.parity["non_finite"] == "reference"
    assert f"invalid: {rec.case_id}: non-finite outputs" in err
    assert "non-finite" in stdout  # the table's parity cell, never a number


def test_custom_code_checkpoint_runs_only_when_accepted(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = _broken_checkpoints(tmp_path, cache_dir)["custom-code"]
    out = tmp_path / "o"
    base = ["run", "-m", str(custom), "--out", str(out), "--cache-dir", str(cache_dir), *FAST]
    assert _run(base, capsys)[0] == 2 and not out.exists()
    code, _, err = _run([*base, "--ignore-custom-code"], capsys)
    assert code == 0, err


def test_a_crash_of_the_tool_has_its_own_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.commands import report

    def boom(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(report, "cmd_report", boom)
    code, _, err = _run(["report", "anything"], capsys)
    assert code == 4
    assert "Traceback" in err and "internal error" in err


def test_version_and_resume_with_the_run_directory_alone(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("harness ")
    out = tmp_path / "o"
    args = ["run", "-m", "xlmr-tiny", "--batch-sizes", "1,2", "--seq-lens", "8", "--out", str(out)]
    assert _run([*args, "--cache-dir", str(cache_dir), *FAST], capsys)[0] == 0
    (run_dir,) = out.iterdir()
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    (run_dir / "records.jsonl").write_text(lines[0] + "\n")  # as if killed after one case
    code, _, err = _run(["run", "--resume", str(run_dir), "--cache-dir", str(cache_dir)], capsys)
    assert code == 0, err
    run = load_run(run_dir)
    assert sorted(r.case_id for r in run.records) == sorted(run.meta.planned)
