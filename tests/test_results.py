from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.records.results import SCHEMA_VERSION, Record, RunMeta, load_run
from harness.records.store import RunStore

DATA = Path(__file__).parent / "data"


def _meta(run_id: str = "r1") -> RunMeta:
    return RunMeta(run_id=run_id, created="now", kind="sweep", env={"cpu_model": "x"}, config={})


def _record(i: int, status: str = "ok") -> Record:
    return Record(
        case_id=f"m/eager/cpu/float32/b{i}/s16/t1",
        case={"batch_size": i},
        status=status,
        samples=[0.001 * i, 0.002],
        summary={"p50": 0.0015},
    )


def test_round_trip_and_schema_version(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _meta())
    store.append(_record(1))
    store.append(_record(2, "error"))
    run = load_run(store.path)
    assert run.meta.schema_version == SCHEMA_VERSION == 5
    assert [r.to_dict() for r in run.records] == [
        _record(1).to_dict(),
        _record(2, "error").to_dict(),
    ]
    assert store.done() == {_record(1).case_id}  # errors are retried on resume
    assert run.records[0].key == "eager/cpu/float32/b1/s16/t1"
    assert run.records[0].model == "m"


def test_golden_v1_file_still_loads() -> None:
    run = load_run(DATA / "run_v1")
    assert run.meta.run_id == "golden-v1"
    assert run.meta.schema_version == 5  # migrated on load
    assert run.records[0].summary["p50"] == pytest.approx(0.0012)
    assert run.records[0].calibration == {}  # v1 had no speed probe
    assert run.records[0].scenario == {} and run.records[0].host == {}  # v4 fields, defaulted


def test_v4_records_load_with_compute_moved_out_of_gpu() -> None:
    # Up to v4, FLOPs and the roofline sat in ``gpu.compute``, even for CPU cases.
    old = {
        "case_id": "m/eager/cpu/float32/b1/s8/t1",
        "case": {},
        "status": "ok",
        "gpu": {"compute": {"achieved_tflops": 0.5}, "max_allocated_bytes": 7},
    }
    rec = Record.from_dict(old)
    assert rec.compute == {"achieved_tflops": 0.5}
    assert rec.gpu == {"max_allocated_bytes": 7} and "compute" in old["gpu"]  # input untouched
    assert Record.from_dict(rec.to_dict()) == rec


def test_committed_gpu_runs_load_in_the_current_shape() -> None:
    gpu_runs = sorted((DATA.parent.parent / "reports" / "gpu").glob("*/gpu-large-*"))
    assert gpu_runs
    for path in gpu_runs:
        run = load_run(path)
        assert run.meta.schema_version == SCHEMA_VERSION
        ok = [r for r in run.records if r.status == "ok"]
        assert ok and all(r.compute["achieved_tflops"] > 0 for r in ok)


def test_newer_schema_refused(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _meta())
    data = json.loads((store.path / "run.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    (store.path / "run.json").write_text(json.dumps(data))
    with pytest.raises(HarnessError, match="newer than this harness"):
        load_run(store.path)


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _meta())
    store.append(_record(1))
    with (store.path / "records.jsonl").open("a") as fh:
        fh.write('{"case_id": "m/eager/cpu/float32/b9')  # a kill mid-write
    run = load_run(store.path)
    assert len(run.records) == 1 and run.skipped_lines == 1


def test_run_directory_is_exclusive(tmp_path: Path) -> None:
    RunStore.create(tmp_path, _meta())
    with pytest.raises(HarnessError, match="already exists"):
        RunStore.create(tmp_path, _meta())


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HarnessError, match="not writable"):
        RunStore.create(blocker / "sub", _meta())


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not a run directory"):
        load_run(tmp_path)


def _writer(path: str, worker: int) -> None:
    store = RunStore(Path(path))
    for i in range(50):
        rec = Record(case_id=f"w{worker}/x/{i}", case={}, status="ok", samples=[0.1] * 500)
        store.append(rec)


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _meta())
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(store.path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    run = load_run(store.path)
    assert run.skipped_lines == 0
    assert len(run.records) == 200
