"""The on-disk layout of runs, written so that no kill can corrupt or lose a finished case.

``reports/<run_id>/run.json`` is written once, atomically (temp file + rename).
``records.jsonl`` gets one line per finished case: a single ``write`` under an exclusive
``flock``, then ``fsync``; so concurrent writers (isolated worker processes, two sweeps) never
interleave, and a SIGKILL can at worst leave a torn last line, which :func:`load_run` skips.
A run directory is created exclusively, so two sweeps never share one by accident.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from .errors import HarnessError
from .results import Record, RunMeta, load_run

__all__ = ["RecordSink", "RunStore", "new_run_id", "write_atomic"]


class RecordSink(Protocol):
    """Where a measured record goes: a run directory, or (on a Ray worker) back to the driver."""

    def append(self, record: Record) -> None: ...


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunStore:
    """A run directory: create it, append records, and tell what is already done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records_file = path / "records.jsonl"

    @classmethod
    def create(cls, root: Path, meta: RunMeta) -> RunStore:
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise HarnessError(
                f"{root}: output directory is not writable ({exc.strerror})"
            ) from None
        path = root / meta.run_id
        try:
            path.mkdir()
        except FileExistsError:
            raise HarnessError(f"{path}: run directory already exists") from None
        write_atomic(path / "run.json", json.dumps(meta.to_dict(), indent=2) + "\n")
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunStore:
        load_run(path)  # validates schema and layout
        return cls(path)

    def append(self, record: Record) -> None:
        line = (json.dumps(record.to_dict(), separators=(",", ":")) + "\n").encode()
        fd = os.open(self.records_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def done(self) -> set[str]:
        """Case ids with a final answer (ok, invalid, skipped); errors are retried on resume."""
        run = load_run(self.path)
        return {r.case_id for r in run.latest() if r.status != "error"}
