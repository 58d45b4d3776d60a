"""Robustness: isolated workers that die or hang, a sweep killed mid-run and resumed, and
two sweeps on one run directory."""

from __future__ import annotations

import fcntl
import json
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
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.execution.plan import expand
from harness.records.results import load_run
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec

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
        warmup_iters=1, min_iters=5, max_iters=100000, target_rel_ci=1e-9, max_time_s=600
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
        # Each group's clock starts with its worker: the ONNX Runtime group imports, exports
        # (cold cache), checks parity and measures inside it, so it gets room on a loaded runner.
        RunOptions(cache_dir=cache_dir, isolate=True, group_timeout_s=40),
        cases=cases,
    )
    first, second = load_run(path).records
    assert first.status == "error" and "timed out after 40 s" in first.message
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
        expected = 143 if sig == signal.SIGTERM else 130
        assert proc.returncode == expected and "--resume" in err and "Traceback" not in err
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
    from harness.execution.launcher import _written_since

    f = tmp_path / "records.jsonl"
    f.write_text('{"case_id": "m/a"}\n')
    offset = f.stat().st_size
    with f.open("a") as fh:
        fh.write('{"case_id": "m/b"}\n{"case_id": "m/c", "sam')  # the last line is torn
    assert _written_since(f, offset) == {"m/b"}
    assert _written_since(tmp_path / "missing.jsonl", 0) == set()


def _cases(n: int) -> list[object]:
    sweep = SweepSpec(
        models=("xlmr-tiny",), backends=("eager",), batch_sizes=tuple(range(1, n + 1)),
        seq_lens=(8,), threads=1,
    )  # fmt: skip
    return list(expand(sweep))


def test_the_watchdog_ends_a_call_that_never_returns(tmp_path: Path) -> None:
    """A case whose call never returns: the watchdog ends its worker after the case timeout,
    the case is recorded as an error naming the limit, and the group's other cases run."""
    import functools

    from harness.execution.launcher import _run_isolated
    from harness.records.results import RunMeta
    from harness.records.store import RunStore

    from .fakes import hanging_group_job

    store = RunStore.create(
        tmp_path, RunMeta(run_id="w", created="", kind="sweep", env={}, config={})
    )
    cases = _cases(3)
    hang = cases[1].case_id  # type: ignore[attr-defined]
    opts = RunOptions(cache_dir=tmp_path, case_timeout_s=2.0)
    start = time.monotonic()
    _run_isolated(cases, store, opts, lambda e: None, functools.partial(hanging_group_job, hang))  # type: ignore[arg-type]
    assert time.monotonic() - start < 60
    by_id = {r.case_id: r for r in load_run(store.path).records}
    assert set(by_id) == {c.case_id for c in cases}  # type: ignore[attr-defined]
    assert by_id[hang].status == "error"
    assert "no progress for 2 s, the watchdog ended the worker" in by_id[hang].message
    assert all(r.status == "ok" for k, r in by_id.items() if k != hang), [
        (r.case_id, r.status, r.message) for r in by_id.values()
    ]


def test_a_worker_beyond_its_memory_ceiling_fails_out_of_memory(tmp_path: Path) -> None:
    from harness.execution.launcher import run_in_worker
    from harness.records.results import RunMeta
    from harness.records.store import RunStore

    from .fakes import greedy_job

    store = RunStore.create(
        tmp_path, RunMeta(run_id="m", created="", kind="sweep", env={}, config={})
    )
    outcome = run_in_worker(
        greedy_job, store, RunOptions(cache_dir=tmp_path, worker_memory_bytes=2**30), lambda e: None
    )
    assert outcome.current == "m/greedy" and outcome.exitcode not in (0, None)


def test_a_case_that_runs_out_of_memory_says_so(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.backends.eager import EagerBackend

    calls = {"n": 0}
    original = EagerBackend.run

    def greedy_run(self: EagerBackend, bound: object) -> object:
        calls["n"] += 1
        if calls["n"] > 1:  # the parity probe passes, the case's calls do not
            raise MemoryError()
        return original(self, bound)

    sweep = SweepSpec(
        models=("xlmr-tiny",), backends=("eager",), batch_sizes=(1,), seq_lens=(8,),
        isolate=False,
    )  # fmt: skip
    monkeypatch.setattr(EagerBackend, "run", greedy_run)
    (rec,) = load_run(run_sweep(sweep, tmp_path, RunOptions(cache_dir=cache_dir))).records
    assert rec.status == "error" and rec.message.startswith("out of memory")


def _children_alive(pid: int) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(pid).children(recursive=True) if c.is_running()]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_sigterm_reaps_the_workers_and_exits_143(tmp_path: Path, cache_dir: Path) -> None:
    """A cancelled CI job: SIGTERM to the driver of an isolated sweep ends it like Ctrl-C —
    exit 143, no worker left behind, finished cases kept, the run resumable."""
    out = tmp_path / "out"
    args = [
        sys.executable, "-m", "harness", "run", "-m", "xlmr-tiny", "-b", "eager",
        "--batch-sizes", "1,2,4,8", "--seq-lens", "8,16", "--threads", "1", "--max-time",
        "0.5", "--target-ci", "1e-9", "--out", str(out), "--cache-dir", str(cache_dir), "-q",
    ]  # fmt: skip
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        files = list(out.glob("*/records.jsonl")) if out.exists() else []
        if files and len(files[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    workers = _children_alive(proc.pid)
    assert workers, "the sweep runs its group in a worker"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    (run_dir,) = out.iterdir()
    assert main([*args[3:-1], "--resume", str(run_dir)]) == 0
    after = load_run(run_dir)
    assert {r.case_id for r in after.latest()} == set(after.meta.planned)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, cache_dir: Path
) -> None:
    """The driver of an isolated sweep SIGKILLed at random moments, 20 times, each time
    resumed: in the end every planned case once, no line unparsable."""
    import random

    rng = random.Random(4)
    out = tmp_path / "out"
    base = [
        sys.executable, "-m", "harness", "run", "-m", "xlmr-tiny", "-b", "eager",
        "--batch-sizes", "1,2,4,8", "--seq-lens", "8,16,32", "--threads", "1",
        "--max-time", "0.3", "--target-ci", "1e-9", "--cache-dir", str(cache_dir), "-q",
    ]  # fmt: skip
    first = subprocess.Popen([*base, "--out", str(out)], cwd=tmp_path, stderr=subprocess.DEVNULL)
    while not list(out.glob("*/run.json")) and first.poll() is None:
        time.sleep(0.02)
    first.kill()
    first.wait()
    (run_dir,) = out.iterdir()
    kills = 1
    while kills < 20:
        proc = subprocess.Popen(
            [*base, "--resume", str(run_dir)], cwd=tmp_path, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=rng.uniform(1.0, 6.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
            psutil.wait_procs(_children_alive(proc.pid), timeout=5)
            time.sleep(0.6)  # an orphaned worker notices within 0.5 s and stops
            continue
        if proc.returncode == 0:
            break
    assert main([*base[3:], "--resume", str(run_dir)]) == 0
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    ids = [r["case_id"] for r in records if r["status"] == "ok"]
    planned = load_run(run_dir).meta.planned
    assert sorted(ids) == sorted(planned)  # none lost, none twice
