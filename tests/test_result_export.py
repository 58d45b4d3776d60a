"""Exports people load directly: one flat row per case, CSV always, Parquet with pyarrow."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from harness.cli import main
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager", "onnxruntime"),
        batch_sizes=(1, 2),
        seq_lens=(8,),
        isolate=False,
        measure=MeasureSpec(min_iters=5, max_time_s=0.1),
    )
    return run_sweep(sweep, tmp_path_factory.mktemp("exp"), RunOptions(cache_dir=cache_dir))


def test_csv_has_one_row_per_case(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.csv"
    assert main(["export", str(run_dir), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 4
    assert {r["backend"] for r in rows} == {"eager", "onnxruntime"}
    for r in rows:
        assert r["status"] == "ok" and float(r["p50_ms"]) > 0 and int(r["batch"]) in (1, 2)
        assert float(r["p50_ms"]) <= float(r["p90_ms"]) and r["weights_sha256"]


def test_parquet_loads_or_says_what_to_install(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.parquet"
    code = main(["export", str(run_dir), "--format", "parquet", "--out", str(out)])
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert code == 2 and "pip install 'xlmr-harness[parquet]'" in capsys.readouterr().err
        assert not out.exists()
        return
    assert code == 0
    table = pq.read_table(out)
    assert table.num_rows == 4 and "p50_ms" in table.column_names
