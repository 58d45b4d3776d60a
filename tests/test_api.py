"""The Python API checks what the CLI checks: the same one-line message, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import harness
from harness.cli import main
from harness.spec.config import MeasureSpec


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line.removeprefix("error: ")


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"models": ["./no-such-checkpoint"]}, ["-m", "./no-such-checkpoint"]),
    ({"models": ["xlmr-tiny"], "languages": ["xyz"]}, ["-m", "xlmr-tiny", "--languages", "xyz"]),
    ({"models": ["no/such-model"]}, ["-m", "no/such-model"]),
]


@pytest.mark.parametrize(("kwargs", "flags"), CASES)
def test_run_refuses_bad_input_with_the_cli_message(
    kwargs: dict[str, Any],
    flags: list[str],
    tmp_path: Path,
    small_corpus: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "reports"
    with pytest.raises(harness.HarnessError) as raised:
        harness.run(out=out, corpus=str(small_corpus), **kwargs)
    cli = _cli_error(["run", *flags, "--corpus", str(small_corpus), "--out", str(out)], capsys)
    assert str(raised.value) == cli
    assert not out.exists()


def test_an_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "reports"
    with pytest.raises(harness.HarnessError) as raised:
        harness.run(models=["xlmr-tiny"], out=out)
    assert str(raised.value) == _cli_error(["run", "-m", "xlmr-tiny", "--out", str(out)], capsys)
    with pytest.raises(harness.HarnessError, match="not writable"):
        harness.compare(models=["xlmr-tiny", "xlmr-tiny-deep"], out=out)
    assert blocker.read_text() == "x"


def test_compare_refuses_a_bad_candidate_before_writing(tmp_path: Path) -> None:
    with pytest.raises(harness.HarnessError, match="no/such-model"):
        harness.compare(models=["xlmr-tiny", "no/such-model"], out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_run_load_and_export_from_python(tmp_path: Path, cache_dir: Path) -> None:
    run = harness.run(
        models=["xlmr-tiny"],
        backends=["eager"],
        batch_sizes=[1],
        seq_lens=[8],
        isolate=False,
        out=tmp_path,
        cache_dir=cache_dir,
        measure=MeasureSpec(max_time_s=0.05),
    )
    (rec,) = run.records
    assert rec.status == "ok" and rec.summary["p50"] > 0
    assert harness.load(run.path).records[0].case_id == rec.case_id
    (row,) = harness.export_rows(run.path)
    assert row["case_id"] == rec.case_id
