"""One preflight for every command (:mod:`harness.execution.plan`): bad input gets one line and exit
2 within seconds, and nothing is written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.checkpoints.load import hub_problem
from harness.cli import main
from harness.errors import HarnessError
from harness.execution.plan import plan_sweep
from harness.spec.sweep import SweepSpec


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "s"\nmodels = ["xlmr-tiny"]\nbackends = ["eager"]\nbatch_sizes = [1]\n'
        "seq_lens = [8]\nthreads = 1\n"
    )
    return suite


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "-m", "xlmr-tiny", "-m", "no/such-model"],
        ["check", "--candidate", "no/such-model", "--suite", "SUITE"],
        [
            "check",
            "--candidate",
            "xlmr-tiny",
            "--baseline-model",
            "no/such-model",
            "--suite",
            "SUITE",
        ],
        ["run", "-m", "no/such-model"],
        ["serve-bench", "-m", "no/such-model", "-b", "eager", "--languages", "deu"],
        ["train-intermediate", "-m", "no/such-model", "--out", "OUT/ckpt"],
    ],
)
def test_a_hub_id_that_cannot_be_fetched_is_refused_at_once(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], small_corpus: Path
) -> None:
    out = tmp_path / "out"
    argv = [a.replace("SUITE", str(_suite(tmp_path))).replace("OUT", str(out)) for a in argv]
    if argv[0] != "train-intermediate":
        argv += ["--out", str(out)]
    argv += (
        ["--corpus", str(small_corpus)] if argv[0] in ("serve-bench", "train-intermediate") else []
    )
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no/such-model" in err[0], err
    assert not out.exists()


def test_the_hub_is_asked_within_a_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline machines (and CI) have no hub: the answer comes in seconds, never minutes of
    retries; with HF_HUB_OFFLINE it is immediate."""
    assert hub_problem("no/such-model") == "the hub is switched off (HF_HUB_OFFLINE)"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    problem = hub_problem("no/such-model-xlmr-harness", deadline_s=3.0)
    assert problem is not None and time.monotonic() - start < 6


def test_the_library_checks_what_the_cli_checks(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))  # no downloaded corpus either
    with pytest.raises(HarnessError, match="no/such-model"):
        plan_sweep(SweepSpec(models=("no/such-model",), backends=("eager",)))
    with pytest.raises(HarnessError, match="no Tatoeba corpus"):
        plan_sweep(
            SweepSpec(models=("xlmr-tiny",), languages=("deu",), corpus=None),
            skip_missing_text=False,
        )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-b", "eager", "--dtype", "bfloat16"], "no bf16 instructions"),
        (["-b", "openvino"], "OpenVINO is not installed"),
        (
            ["-b", "onnxruntime-int8-static", "--backend-option",
             "onnxruntime-int8-static.calibration_languages=xho", "--corpus", "CORPUS"],
            "calibration_languages: unknown language 'xho'",
        ),
    ],
)  # fmt: skip
def test_cpu_variants_refused_before_anything_runs(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    small_corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An ISA without bf16, a missing OpenVINO, a calibration language the corpus lacks: one
    line, exit 2, nothing written."""
    import sys

    import harness.execution.plan as plan

    monkeypatch.setattr(plan, "cpu_isa", lambda: ["avx2"])
    monkeypatch.setitem(sys.modules, "openvino", None)
    out = tmp_path / "out"
    argv = [a.replace("CORPUS", str(small_corpus)) for a in argv]
    assert main(["run", "-m", "xlmr-tiny", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()
