"""Run a whole sweep into a run directory: inline, or one process per (checkpoint, backend).

Isolation (pyperf's workers, optimum-benchmark's process launcher) is the default for real
sweeps: a segfault, an out-of-memory kill or a hung case takes down one worker, not the
sweep. The parent records what the worker was doing when it died, skips the group's larger
shapes after an out-of-memory kill, and starts a fresh worker for the rest. Records are
appended by whoever measured them, as each case finishes, so a killed sweep loses nothing
finished and ``resume`` skips it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import itertools
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, raise_terminated
from harness.execution.options import Event, RunOptions
from harness.execution.plan import expand
from harness.execution.runner import run_group
from harness.execution.worker_policy import after_worker_death
from harness.records.env import collect_env
from harness.records.results import Record, RunMeta, error_record, load_run, timestamp
from harness.records.store import RunStore, new_run_id
from harness.records.types import CaseInfo
from harness.spec.sweep import Case, SweepSpec

if TYPE_CHECKING:
    from harness.execution.ray_executor import RayTarget

__all__ = [
    "Job",
    "WorkerOutcome",
    "groups_of",
    "run_in_worker",
    "run_sweep",
]


def groups_of(cases: list[Case]) -> list[list[Case]]:
    return [list(g) for _, g in itertools.groupby(cases, key=lambda c: c.group_key)]


#: Work a worker process does: ``job(store, opts, emit)``. A module-level function or a
#: ``functools.partial`` of one, so it pickles for a spawned process.
Job = Callable[[RunStore, RunOptions, Callable[[Event], None]], None]


@dataclasses.dataclass
class WorkerOutcome:
    done: set[str]
    current: str | None
    reason: str
    exitcode: int | None

    @property
    def killed(self) -> bool:
        """SIGKILL without a timeout: the kernel's out-of-memory killer, most likely."""
        return self.exitcode == -signal.SIGKILL and not self.reason.startswith("timed out")

    def message(self) -> str:
        text = self.reason or f"worker died (exit code {self.exitcode})"
        return text + (" (SIGKILL: likely out of memory)" if self.killed else "")


def _worker(job: Job, path: str, opts: RunOptions, q: Any, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (a job's whole process group gets it)
    _die_with(parent)
    if opts.worker_memory_bytes:
        import resource

        limit = int(opts.worker_memory_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from harness.notices import show_user_warnings
    from harness.quiet import quiet_libraries

    quiet_libraries()
    show_user_warnings()

    def emit(event: Event) -> None:
        kind, payload = event
        q.put((kind, payload.to_dict() if isinstance(payload, Record) else payload))

    try:
        job(_OrphanSafeStore(Path(path), parent), opts, emit)
    except HarnessError as exc:  # the user's problem (a full disk): one line, in the parent
        q.put(("fatal", str(exc)))
        return
    q.put(("end", None))


class _OrphanSafeStore(RunStore):
    """A worker's store: nothing is appended once the parent is gone (a resumed run may be
    measuring the same case already; the record would be a duplicate)."""

    def __init__(self, path: Path, parent: int) -> None:
        super().__init__(path)
        self._parent = parent

    def append(self, record: Record) -> None:
        if os.getppid() != self._parent:
            os._exit(3)
        super().append(record)


def run_in_worker(
    job: Job, store: RunStore, opts: RunOptions, emit: Callable[[Event], None]
) -> WorkerOutcome:
    """Run ``job`` in a fresh spawned process (``run``, ``compare`` and ``check`` all measure
    this way): events relayed, the group timeout enforced, the worker killed if the parent is
    interrupted, and what it finished read from the store even if its last events were lost."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(job, str(store.path), opts, q, os.getpid()))
    offset = _size(store.records_file)
    try:
        proc.start()
        done, current, reason = _follow(proc, q, opts, emit)
    finally:  # an interrupted parent must not leave a worker measuring on its own
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=30)
    # A worker killed right after appending a record may never have flushed its "done"
    # event through the queue: what it wrote to the store is what it finished.
    written = _written_since(store.records_file, offset) - done
    if written:
        emit(("done-batch", len(written)))
    return WorkerOutcome(done | written, current, reason, proc.exitcode)


def _group_job(
    cases: list[CaseInfo], store: RunStore, opts: RunOptions, emit: Callable[[Event], None]
) -> None:
    run_group([Case.from_dict(c) for c in cases], store, opts, emit)


def _run_isolated(
    group: list[Case],
    store: RunStore,
    opts: RunOptions,
    emit: Callable[[Event], None],
    job_of: Callable[[list[CaseInfo]], Job] | None = None,
) -> None:
    """One group in fresh workers until every case has a record: a worker that dies (or that
    the watchdog ends) is blamed on the case it was on, and a new one takes the rest.
    ``job_of`` makes the worker's job from the pending cases (the group runner)."""
    pending = list(group)
    make = job_of or (lambda cases: functools.partial(_group_job, cases))
    while pending:
        job = make([c.to_dict() for c in pending])
        outcome = run_in_worker(job, store, opts, emit)
        remaining = [c for c in pending if c.case_id not in outcome.done]
        if not remaining:
            return
        # The worker died mid-group: blame the case it was on, keep going with the rest.
        pending = after_worker_death(
            remaining, outcome.current, outcome.message(), store, emit, killed=outcome.killed
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _written_since(path: Path, offset: int) -> set[str]:
    """Case ids of the whole records appended to ``path`` after byte ``offset``."""
    import json

    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            tail = fh.read()
    except FileNotFoundError:
        return set()
    ids = set()
    for line in tail.decode("utf-8", errors="replace").splitlines():
        try:
            ids.add(str(json.loads(line)["case_id"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn last line is not a finished case
    return ids


def _follow(
    proc: Any, q: Any, opts: RunOptions, emit: Callable[[Event], None]
) -> tuple[set[str], str | None, str]:
    """Relay a worker's events until it ends, dies or overruns the group timeout."""
    done: set[str] = set()
    current: str | None = None
    started = last = time.monotonic()
    while True:
        try:
            kind, payload = q.get(timeout=0.2)
        except queue.Empty:
            if not proc.is_alive():
                return done, current, f"worker died (exit code {proc.exitcode})"
            now = time.monotonic()
            if opts.group_timeout_s and now - started > opts.group_timeout_s:
                proc.kill()
                return done, current, f"timed out after {opts.group_timeout_s:g} s"
            # (counted from the worker's first event: starting Python and torch is no call)
            if opts.case_timeout_s and current is not None and now - last > opts.case_timeout_s:
                proc.kill()
                return (
                    done,
                    current,
                    (
                        f"timed out: no progress for {opts.case_timeout_s:g} s, the watchdog "
                        "ended the worker (a call that never returned?)"
                    ),
                )
            continue
        last = time.monotonic()
        if kind == "start":
            current = payload
            emit(("start", payload))
        elif kind == "done":
            rec = Record.from_dict(payload)
            done.add(rec.case_id)
            emit(("done", rec))
        elif kind == "end":
            return done, current, ""
        elif kind == "fatal":
            proc.join(timeout=30)
            raise HarnessError(str(payload))


def _die_with(parent: int) -> None:
    """A worker whose parent died (SIGKILL) stops too, instead of measuring for nobody: the
    kernel's death signal where there is one (Linux), and a watch on the parent's pid —
    given by the parent itself, so a parent killed while this worker started is seen too."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def run_sweep(
    sweep: SweepSpec,
    out_root: Path,
    opts: RunOptions,
    *,
    resume: Path | None = None,
    models_dir: Path | None = None,
    emit: Callable[[Event], None] | None = None,
    cases: list[Case] | None = None,
    skipped: list[tuple[Case, str]] | None = None,
    ray: RayTarget | None = None,
) -> Path:
    """Run ``sweep`` (or the explicit ``cases``) and return the run directory.

    ``skipped`` are planned cases that cannot run here (e.g. language cases without a corpus),
    each with its reason: they are recorded ``skipped`` first, so the run says what it left out.

    With ``ray``, every group is a Ray task (:mod:`harness.execution.ray_executor`) instead of a local
    process; the run directory is written here, the same way.

    With ``resume``, continue that run: cases already recorded (other than errors) are skipped.
    SIGTERM is turned into ``KeyboardInterrupt`` so a stopped sweep unwinds cleanly; what was
    recorded stays recorded.
    """
    emit = emit or (lambda event: None)
    cases = cases if cases is not None else expand(sweep, models_dir)
    if opts.worker_memory_bytes and any(c.device == "cuda" for c in cases):
        raise HarnessError(
            "--worker-memory limits a worker's address space, which CUDA needs far more of "
            "than it uses: leave it off for GPU cases"
        )
    if ray is not None:  # an unreachable cluster is an input error: nothing written yet
        from harness.execution.ray_executor import connect

        connect(ray)
    if resume is not None:
        previous = load_run(resume).meta
        if previous.planned and {c.case_id for c in cases} - set(previous.planned):
            raise HarnessError(f"{resume}: the sweep differs from the one being resumed")
        if sweep.repeats > 1:
            raise HarnessError("--resume does not support repeated sweeps (repeats > 1)")
        store = RunStore.open(resume)
        done = store.done()
        cases = [c for c in cases if c.case_id not in done]
    else:
        meta = RunMeta(
            run_id=new_run_id(sweep.name),
            created=timestamp(),
            kind="sweep",
            env=collect_env(),
            config={
                "sweep": sweep.to_dict(),
                "models": {c.model.name: c.model.to_dict() for c in cases},
            },
            planned=[c.case_id for c in cases] + [c.case_id for c, _ in skipped or ()],
        )
        store = RunStore.create(out_root, meta)
        for case, reason in skipped or ():
            rec = error_record(case, "skipped", reason)
            store.append(rec)
            emit(("done", rec))
    lock = _lock_run(store.path)
    main_thread = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        for repeat in range(sweep.repeats):
            rep_opts = dataclasses.replace(opts, repeat=repeat)
            if ray is not None:
                from harness.execution.ray_executor import run_groups_on_ray

                run_groups_on_ray(groups_of(cases), store, rep_opts, emit, ray)
                continue
            for group in groups_of(cases):
                if opts.isolate:
                    _run_isolated(group, store, rep_opts, emit)
                else:
                    run_group(group, store, rep_opts, emit)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous_term)
        os.close(lock)
    return store.path


def _lock_run(path: Path) -> int:
    """Hold ``.lock`` for the sweep's lifetime: a second sweep resuming the same run refuses."""
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise HarnessError(f"{path}: another sweep is writing this run") from None
    return fd
