"""The Ray executor: same cases, records and statuses as the local launcher; a worker killed
mid-group, a driver killed mid-run, a cluster that cannot keep timed groups apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.execution.plan import expand
from harness.execution.ray_executor import NODE_RESOURCE, RayTarget, connect, parse_executor
from harness.records.results import load_run
from harness.spec.sweep import MeasureSpec, SweepSpec

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        resources={NODE_RESOURCE: 1},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def _sweep(max_time: float = 0.2, full_time: bool = False) -> SweepSpec:
    """``full_time``: every case takes its whole ``max_time`` (no early stop on a tight CI),
    so an event sent at a case's start still finds it running."""
    return SweepSpec(
        name="tiny",
        models=("xlmr-tiny",),
        backends=("eager", "onnxruntime"),
        batch_sizes=(1, 2),
        seq_lens=(8,),
        measure=MeasureSpec(
            max_time_s=max_time, target_rel_ci=1e-9 if full_time else 0.02, max_iters=10**6
        ),
    )


def test_a_ray_sweep_writes_the_same_cases_as_the_local_launcher(
    local_ray: None, tmp_path: Path, cache_dir: Path
) -> None:
    opts = RunOptions(cache_dir=cache_dir, isolate=True)
    local = load_run(run_sweep(_sweep(), tmp_path / "local", opts))
    events: list[tuple[str, Any]] = []
    remote = load_run(
        run_sweep(_sweep(), tmp_path / "ray", opts, ray=RayTarget(), emit=events.append)
    )
    assert remote.meta.schema_version == local.meta.schema_version
    assert remote.meta.planned == local.meta.planned
    by_id = {r.case_id: r for r in remote.latest()}
    assert set(by_id) == {r.case_id for r in local.latest()}
    for rec in local.latest():
        other = by_id[rec.case_id]
        assert other.status == rec.status == "ok"
        assert set(other.to_dict()) == set(rec.to_dict())
        assert len(other.samples) >= 3
        assert other.host["executor"] == "ray" and other.host["pid"] != os.getpid()
        assert other.host["hardware"] and other.host["env"]["torch"]
        assert rec.host == {}  # locally, run.json's environment describes the case
    nodes = [p for kind, p in events if kind == "node"]
    assert len(nodes) == 2  # one fresh worker process per group
    assert len({n["pid"] for n in nodes}) == 2


def test_a_worker_killed_mid_group_records_an_error_naming_its_node(
    local_ray: None, tmp_path: Path, cache_dir: Path
) -> None:
    sweep = _sweep(max_time=2.0, full_time=True).replace(backends=("eager",), batch_sizes=(1, 2, 4))
    cases = [c.case_id for c in expand(sweep)]
    victim = cases[1]
    worker: dict[str, int] = {}

    def emit(event: tuple[str, Any]) -> None:
        kind, payload = event
        if kind == "node" and "pid" not in worker:
            worker["pid"] = payload["pid"]
        elif kind == "start" and payload == victim and "killed" not in worker:
            # at once: a relayed event can arrive late on a loaded machine, and a kill after
            # the case's 2 s would hit the next case
            os.kill(worker["pid"], signal.SIGKILL)
            worker["killed"] = 1

    opts = RunOptions(cache_dir=cache_dir, isolate=True)
    run = load_run(run_sweep(sweep, tmp_path, opts, ray=RayTarget(), emit=emit))
    status = {r.case_id: r for r in run.latest()}
    assert set(status) == set(cases)
    assert status[victim].status == "error"
    assert "worker died on node" in status[victim].message
    assert status[victim].host["pid"] == worker["pid"]
    assert [status[c].status for c in cases if c != victim] == ["ok", "ok"]


def test_resume_completes_a_run_whose_driver_was_killed(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "reports"
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "-m",
        "xlmr-tiny",
        "-b",
        "eager",
        "--batch-sizes",
        "1,2,4",
        "--seq-lens",
        "8",
        "--max-time",
        "1.5",
        "--target-ci",
        "0.000000001",
        "--cache-dir",
        str(cache_dir),
        "--executor",
        "ray",
        "-q",
    ]
    env = os.environ | {"RAY_ADDRESS": ""}
    driver = subprocess.Popen([*args, "--out", str(out)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 180
        records: list[Path] = []
        while time.monotonic() < deadline:
            records = list(out.glob("*/records.jsonl"))
            if records and records[0].read_text().count("\n") >= 1:
                break
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.2)
        driver.kill()
    finally:
        driver.wait(timeout=60)
    run_dir = records[0].parent
    first = load_run(run_dir)
    assert 1 <= len(first.records) < len(first.meta.planned)
    done = subprocess.run(
        [*args, "--resume", str(run_dir)], cwd=REPO, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    final = load_run(run_dir)
    assert {r.case_id for r in final.latest() if r.status == "ok"} == set(final.meta.planned)


def test_a_cluster_without_the_node_resource_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 8.0})
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(HarnessError, match="harness_node"):
        connect(RayTarget(address="ray://head:10001"))
    assert connect(RayTarget(address="ray://head:10001", share_nodes=True)) is fake


def test_executor_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert parse_executor("local") is None
    assert parse_executor("ray") == RayTarget(address=None)
    assert parse_executor("ray://10.0.0.1:10001") == RayTarget(address="ray://10.0.0.1:10001")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert parse_executor("ray") == RayTarget(address="10.0.0.2:6379")
    with pytest.raises(HarnessError, match="--executor"):
        parse_executor("slurm")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--executor", "slurm"], "--executor must be"),
        (["--ray-retries", "2"], "need --executor ray"),
        (["--executor", "ray", "--ray-retries", "-1"], "--ray-retries"),
    ],
)
def test_bad_executor_flags_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    code = main(["run", "-m", "xlmr-tiny", "--out", str(tmp_path / "o"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_unreachable_cluster_is_refused_before_anything_is_written(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    if ray.is_initialized():
        ray.shutdown()
    out = tmp_path / "o"
    args = ["run", "-m", "xlmr-tiny", "--out", str(out), "--cache-dir", str(cache_dir)]
    code = main([*args, "--executor", "ray://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Ray cluster" in err
    assert not out.exists() or not any(out.iterdir())


def test_records_from_different_hardware_are_never_pooled() -> None:
    from harness.records.results import Record, merge_records

    case = {"backend": "eager"}
    a = Record("m/eager/x", case, "ok", samples=[1.0, 1.1], host={"hardware": "Xeon · no GPU"})
    b = Record("m/eager/x", case, "ok", samples=[1.0, 1.2], host={"hardware": "EPYC · no GPU"})
    with pytest.raises(HarnessError, match="different hardware"):
        merge_records([a, b])
    same = Record.from_dict(a.to_dict())
    assert len(merge_records([a, same])[0].samples) == 4
    json.dumps(a.to_dict())


def test_results_of_a_mixed_cluster_are_grouped_by_hardware_and_versions() -> None:
    from harness.records.results import Record
    from harness.render.rows import host_label, result_rows

    def rec(batch: int, cpu: str) -> Record:
        case = {
            "backend": "eager",
            "device": "cpu",
            "dtype": "float32",
            "batch_size": batch,
            "seq_len": 8,
            "threads": 1,
            "language": None,
            "policy": None,
            "options": [],
        }
        env = {"torch": "2.13.0", "onnxruntime": "1.32.0"}
        host = {"hardware": f"{cpu} · no GPU", "env": env}
        summary = {"p50": 0.01, "p90": 0.011, "rel_ci": 0.01, "n": 10}
        return Record(
            f"m/eager/cpu/float32/b{batch}/s8/t1",
            case,
            "ok",
            summary=summary,
            throughput={"sequences_per_s": 100.0, "tokens_per_s": 800.0},
            host=host,
        )

    records = [rec(1, "EPYC"), rec(2, "Xeon"), rec(4, "EPYC")]
    rows = result_rows(records)
    assert [row["hardware"].split(" ·")[0] for row in rows] == ["EPYC", "EPYC", "Xeon"]
    assert "torch 2.13.0" in rows[0]["hardware"]
    assert "hardware" not in result_rows(records[:1])[0]  # one class: no column
    assert host_label(Record("m/x", {}, "ok")) == "run"
