"""Robustness: isolated workers that die or hang, a sweep killed mid-run and resumed, and
two sweeps on one run directory."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.config import MeasureSpec
from harness.launcher import run_sweep
from harness.results import load_run
from harness.runner import RunOptions
from harness.sweep import SweepSpec, expand

REPO = Path(__file__).resolve().parent.parent


def _kill_worker_when(path_root: Path, n_records: int, stop: threading.Event) -> None:
    """SIGKILL the (first) spawned worker once ``n_records`` are on disk."""
    me = psutil.Process()
    while not stop.is_set():
        files = list(path_root.glob("*/records.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= n_records:
            for child in me.children(recursive=True):
                if "spawn_main" in " ".join(child.cmdline()):
                    child.send_signal(signal.SIGKILL)
                    return
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_is_recorded_and_the_sweep_goes_on(tmp_path: Path, cache_dir: Path) -> None:
    # Group 1 (eager): b1s8 is fast, b2s256 runs for up to 60 s and is killed mid-case, so
    # b4s256 (larger) must be skipped. Group 2 (onnxruntime) must still be measured.
    slow = MeasureSpec(
        warmup_iters=1, min_iters=5, max_iters=100000, target_rel_ci=1e-9, max_time_s=60
    )
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(1, 2, 4),
        seq_lens=(8, 256),
        threads=1,
        isolate=True,
        measure=slow,
    )
    cases = [c for c in expand(sweep) if (c.batch_size, c.seq_len) in ((1, 8), (2, 256), (4, 256))]
    fast = SweepSpec(
        models=("xlmr-tiny",),
        backends=("onnxruntime",),
        batch_sizes=(1,),
        seq_lens=(8,),
        threads=1,
        measure=MeasureSpec(max_time_s=0.2),
    )
    cases[0] = expand(fast.replace(backends=("eager",)))[0]
    cases += expand(fast)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_worker_when, args=(tmp_path, 1, stop))
    killer.start()
    try:
        path = run_sweep(
            sweep, tmp_path, RunOptions(cache_dir=cache_dir, isolate=True), cases=cases
        )
    finally:
        stop.set()
        killer.join()
    status = {r.case_id.split("/", 1)[1]: r for r in load_run(path).records}
    assert status["eager/cpu/float32/b1/s8/t1"].status == "ok"
    killed = status["eager/cpu/float32/b2/s256/t1"]
    assert (
        killed.status == "error"
        and "exit code -9" in killed.message
        and "out of memory" in killed.message
    )
    assert status["eager/cpu/float32/b4/s256/t1"].status == "skipped"
    assert status["onnxruntime/cpu/float32/b1/s8/t1"].status == "ok"


@pytest.mark.slow
def test_group_timeout_kills_a_hung_worker(tmp_path: Path, cache_dir: Path) -> None:
    slow = MeasureSpec(
        warmup_iters=1, min_iters=5, max_iters=100000, target_rel_ci=1e-9, max_time_s=120
    )
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager", "onnxruntime"),
        batch_sizes=(2,),
        seq_lens=(64,),
        threads=1,
        isolate=True,
        measure=slow,
    )
    cases = expand(sweep)
    cases[1] = expand(sweep.replace(measure=MeasureSpec(max_time_s=0.2)))[1]
    path = run_sweep(
        sweep,
        tmp_path,
        RunOptions(cache_dir=cache_dir, isolate=True, group_timeout_s=15),
        cases=cases,
    )
    first, second = load_run(path).records
    assert first.status == "error" and "timed out after 15 s" in first.message
    assert second.status == "ok"


def _records(run_dir: Path) -> int:
    f = run_dir / "records.jsonl"
    return len(f.read_text().splitlines()) if f.is_file() else 0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_sweep_loses_nothing_and_resumes(sig: int, tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "-m",
        "xlmr-tiny",
        "-b",
        "eager",
        "-b",
        "torchscript",
        "--batch-sizes",
        "1,2,4",
        "--seq-lens",
        "8,16",
        "--threads",
        "1",
        "--inline",
        "--max-time",
        "0.4",
        # Every case runs its full 0.4 s (no early convergence), so the sweep is still
        # running when the signal comes: a fast machine once finished it first.
        "--target-ci",
        "1e-9",
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        "-q",
    ]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and a child
        # inherits that (Python then never raises KeyboardInterrupt): the sweep would run to
        # the end and exit 0. Ctrl-C must reach it as it would from a terminal.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = list(out.glob("*/run.json")) if out.exists() else []
        if runs and _records(runs[0].parent) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    (run_dir,) = out.iterdir()
    if sig != signal.SIGKILL:
        assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    before = load_run(run_dir)
    assert before.skipped_lines <= 1  # at worst one torn line, never a corrupt file
    done_before = {r.case_id for r in before.records}
    assert len(done_before) >= 3
    assert main([*args[3:-1], "--resume", str(run_dir)]) == 0
    after = load_run(run_dir)
    assert {r.case_id for r in after.latest()} == set(after.meta.planned)
    assert all(r.status == "ok" for r in after.latest())
    counts: dict[str, int] = {}
    for r in after.records:
        counts[r.case_id] = counts.get(r.case_id, 0) + 1
    assert all(counts[c] == 1 for c in done_before)  # finished cases were not measured again


def test_two_sweeps_on_one_run_refuse(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = [
        "run",
        "-m",
        "xlmr-tiny",
        "--inline",
        "--max-time",
        "0.1",
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
    ]
    assert main(base) == 0
    (run_dir,) = out.iterdir()
    fd = os.open(run_dir / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert main([*base, "--resume", str(run_dir)]) == 2
        assert "another sweep is writing this run" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert main([*base, "--resume", str(run_dir)]) == 0  # nothing left to do, but allowed


def test_concurrent_sweeps_into_one_reports_dir(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "-m",
        "xlmr-tiny",
        "--inline",
        "--max-time",
        "0.2",
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        "-q",
    ]
    procs = [subprocess.Popen(cmd, cwd=tmp_path) for _ in range(2)]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    runs = [load_run(d) for d in out.iterdir()]
    assert len(runs) == 2
    assert all(len(r.records) == 1 and r.skipped_lines == 0 for r in runs)


def test_repeated_sweep_records_each_repeat(tmp_path: Path, cache_dir: Path) -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(1,),
        seq_lens=(8,),
        threads=1,
        isolate=False,
        repeats=3,
        measure=MeasureSpec(max_time_s=0.1),
    )
    run = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir)))
    assert [r.workload["repeat"] for r in run.records] == [0, 1, 2]
    assert len({r.case_id for r in run.records}) == 1


def test_an_error_record_keeps_the_whole_traceback(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU failure once kept one line and no stack; the record must hold the traceback."""
    from harness.backends.eager import EagerBackend

    def broken_run(self: EagerBackend, bound: object) -> object:
        raise RuntimeError("INTERNAL ASSERT FAILED deep inside")

    sweep = SweepSpec(models=("xlmr-tiny",), backends=("eager",), seq_lens=(8,), isolate=False)
    opts = RunOptions(cache_dir=cache_dir)
    monkeypatch.setattr(EagerBackend, "run", broken_run)
    run_dir = run_sweep(sweep, tmp_path, opts)
    (rec,) = load_run(run_dir).records
    assert rec.status == "error"
    assert "prepare failed: RuntimeError: INTERNAL ASSERT FAILED deep inside" in rec.message
    assert "Traceback (most recent call last)" in rec.traceback
    assert "broken_run" in rec.traceback


def test_what_a_killed_worker_wrote_counts_as_finished(tmp_path: Path) -> None:
    """Its last "done" event may die in the queue's feeder thread; the store does not lie."""
    from harness.launcher import _written_since

    f = tmp_path / "records.jsonl"
    f.write_text('{"case_id": "m/a"}\n')
    offset = f.stat().st_size
    with f.open("a") as fh:
        fh.write('{"case_id": "m/b"}\n{"case_id": "m/c", "sam')  # the last line is torn
    assert _written_since(f, offset) == {"m/b"}
    assert _written_since(tmp_path / "missing.jsonl", 0) == set()
