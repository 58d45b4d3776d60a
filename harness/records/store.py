"""The on-disk layout of runs, written so that no kill can corrupt or lose a finished case.

``reports/<run_id>/run.json`` is written once, atomically (temp file + rename), and the new
directory is fsynced into its parent. ``records.jsonl`` gets one line per finished case: a
single ``write`` under an exclusive ``flock``, then ``fsync``; so concurrent writers (isolated
worker processes, two sweeps) never interleave. A SIGKILL or a full disk during an append can
still leave a torn last line; before every append, under the same lock, a torn tail is moved
aside into ``records.jsonl.torn-<time>`` (never deleted) and the file cut back to its last
whole record, so the next record never glues onto a fragment. A write that fails (a full
disk) is cut back the same way and raised as one line naming the file.
A run directory is created exclusively, so two sweeps never share one by accident.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Protocol

from harness.errors import HarnessError
from harness.records.results import Record, RunMeta, load_run

__all__ = ["RecordSink", "RunStore", "heal", "new_run_id", "write_atomic"]


class RecordSink(Protocol):
    """Where a measured record goes: a run directory, or (on a Ray worker) back to the driver."""

    def append(self, record: Record) -> None: ...


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.replace(tmp, path)


def heal(records_file: Path, fd: int | None = None) -> Path | None:
    """Move a torn last line of ``records_file`` aside and cut the file back to its last whole
    record; the fragment's new path, or None when the file ends cleanly. With ``fd`` (the
    file open for writing, locked by the caller) it works on that descriptor."""
    own = fd is None
    if own:
        try:
            fd = os.open(records_file, os.O_RDWR)
        except FileNotFoundError:
            return None
    assert fd is not None
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return None
        keep = _last_newline(fd, size)
        fragment = os.pread(fd, size - keep, keep)
        aside = records_file.with_name(
            f"{records_file.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        )
        try:
            with aside.open("wb") as fh:
                fh.write(fragment)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            aside.unlink(missing_ok=True)  # no half copy beside the file
            raise
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return aside
    finally:
        if own:
            os.close(fd)


def _last_newline(fd: int, size: int) -> int:
    """The offset just past the last newline of the file (0 if it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


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
        try:
            write_atomic(path / "run.json", json.dumps(meta.to_dict(), indent=2) + "\n")
            _fsync_dir(path)
            _fsync_dir(root)
        except (HarnessError, OSError):
            shutil.rmtree(path, ignore_errors=True)  # nothing half-written stays behind
            raise
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunStore:
        load_run(path)  # validates schema and layout
        store = cls(path)
        store.heal()
        return store

    def heal(self) -> Path | None:
        """Move a torn last record aside (see the module docstring); its new path or None."""
        try:
            fd = os.open(self.records_file, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return heal(self.records_file, fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def append(self, record: Record) -> None:
        line = (json.dumps(record.to_dict(), separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.records_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise HarnessError(f"cannot write {self.records_file}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                heal(self.records_file, fd)
            except OSError as exc:
                raise HarnessError(
                    f"cannot repair the torn last record of {self.records_file} "
                    f"({exc.strerror}): the disk is full? free space and continue with "
                    f"--resume {self.path}"
                ) from None
            start = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, start)  # no torn record: the file ends at the last whole one
                raise HarnessError(
                    f"cannot append to {self.records_file} ({exc.strerror}): the disk is full "
                    "or the file too large; free space and continue with --resume "
                    f"{self.path}"
                ) from None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def done(self) -> set[str]:
        """Case ids with a final answer (ok, invalid, skipped); errors are retried on resume."""
        run = load_run(self.path)
        return {r.case_id for r in run.latest() if r.status != "error"}
