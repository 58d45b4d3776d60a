"""Versioned run records: what was measured, exactly as measured.

Schema history (bump ``SCHEMA_VERSION`` and add a migration for every change):

1 — first version: ``run.json`` (run metadata, environment, sweep) and ``records.jsonl``
    (one :class:`Record` per case, raw warmup and timed samples in seconds).
2 — records carry ``calibration``, the machine speed probe timed before the case
    (:mod:`harness.measure.calibrate`); version-1 runs load with an empty one.
3 — records carry ``traceback``, the full Python traceback of an ``error`` (empty otherwise);
    older runs load with an empty one.
4 — records carry ``scenario``: for ``serve-bench`` records the LoadGen scenarios run, their
    parsed summaries and the capacity found (:mod:`harness.serving`); closed-loop records and
    older runs have an empty one. Records also carry ``host``: where a case measured on a Ray
    cluster ran (node, process, hardware class, versions); empty when the run's own
    environment (``run.json``) describes it.
5 — FLOPs and the roofline move from ``gpu.compute`` to their own field, ``compute``: they
    are computed on every device (``gpu`` keeps device memory, energy and kernels). Older
    records load with the field moved.

Older files are migrated on load, newer ones refused; never misread.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records.types import (
    BackendInfo,
    Calibration,
    CaseInfo,
    CheckpointInfo,
    Cold,
    Compute,
    GpuFacts,
    HostInfo,
    Memory,
    Parity,
    Scenario,
    Summary,
    Throughput,
    TokenizerInfo,
    Workload,
)
from harness.spec.sweep import Case

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "DamagedRecordsWarning",
    "Record",
    "Run",
    "RunMeta",
    "error_record",
    "load_run",
    "merge_records",
    "timestamp",
]

SCHEMA_VERSION = 5
STATUSES = ("ok", "invalid", "error", "skipped")


def timestamp() -> str:
    """Local time with its UTC offset, as records (``started_at``) and runs (``created``) say it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


#: ``MIGRATIONS[v]`` turns a version-``v`` run.json dict into version ``v + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda data: data | {"schema_version": 2},  # v2 only adds a defaulted record field
    2: lambda data: data | {"schema_version": 3},  # v3 likewise (traceback)
    3: lambda data: data | {"schema_version": 4},  # v4 likewise (scenario)
    4: lambda data: data | {"schema_version": 5},  # v5 moves a record field (Record.from_dict)
}


@dataclass
class Record:
    """One case's result. ``samples`` are per-call seconds after warmup."""

    case_id: str
    case: CaseInfo
    status: str
    message: str = ""
    checkpoint: CheckpointInfo = field(default_factory=lambda: CheckpointInfo())
    tokenizer: TokenizerInfo = field(default_factory=lambda: TokenizerInfo())
    backend: BackendInfo = field(default_factory=lambda: BackendInfo())
    workload: Workload = field(default_factory=lambda: Workload())
    warmup: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    stop_reason: str = ""
    summary: Summary = field(default_factory=lambda: Summary())
    throughput: Throughput = field(default_factory=lambda: Throughput())
    memory: Memory = field(default_factory=lambda: Memory())
    parity: Parity = field(default_factory=lambda: Parity())
    cold: Cold = field(default_factory=lambda: Cold())
    #: FLOPs per call and achieved TFLOP/s on every device; on a GPU also the roofline.
    compute: Compute = field(default_factory=lambda: Compute())
    #: On a GPU: device memory, NVML readings, energy, kernels per call.
    gpu: GpuFacts = field(default_factory=lambda: GpuFacts())
    calibration: Calibration = field(default_factory=lambda: Calibration())
    #: ``serve-bench`` only: LoadGen scenarios, their summaries and the capacity found.
    scenario: Scenario = field(default_factory=lambda: Scenario())
    #: Ray executor only: the node the case ran on, its hardware class and versions.
    host: HostInfo = field(default_factory=lambda: HostInfo())
    started_at: str = ""
    wall_s: float = 0.0
    #: For ``error`` records: the whole traceback, so a failure can be read from the run.
    traceback: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    @property
    def key(self) -> str:
        """The case identity without the checkpoint (see :attr:`harness.spec.sweep.Case.key`)."""
        return self.case_id.split("/", 1)[1]

    @property
    def model(self) -> str:
        return self.case_id.split("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        gpu = data.get("gpu")
        if isinstance(gpu, dict) and "compute" in gpu and "compute" not in data:  # v1-v4
            gpu = dict(gpu)
            data = data | {"compute": gpu.pop("compute"), "gpu": gpu}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunMeta:
    run_id: str
    created: str
    kind: str
    env: dict[str, Any]
    config: dict[str, Any]
    planned: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    meta: RunMeta
    records: list[Record]
    path: Path
    skipped_lines: int = 0

    def latest(self) -> list[Record]:
        """One record per case id: the last written wins (a resumed error may be re-measured)."""
        by_id: dict[str, Record] = {}
        for rec in self.records:
            by_id[rec.case_id] = rec
        return list(by_id.values())


def _migrate(data: dict[str, Any], where: Path) -> dict[str, Any]:
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise HarnessError(f"{where}: no schema_version, not a harness run")
    if version > SCHEMA_VERSION:
        raise HarnessError(
            f"{where}: schema_version {version} is newer than this harness reads "
            f"({SCHEMA_VERSION}); upgrade the harness"
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    return data


class DamagedRecordsWarning(UserWarning):
    """A run's ``records.jsonl`` held lines that are not records (a torn write, an edit):
    they were skipped. The CLI prints it as one line on stderr; reports show it."""


def load_run(path: Path) -> Run:
    """Load a run directory. Lines that do not parse as records (a kill mid-write) are
    skipped, counted in ``Run.skipped_lines`` and reported as a
    :class:`DamagedRecordsWarning` naming the file."""
    meta_file = path / "run.json"
    if not meta_file.is_file():
        raise HarnessError(f"{path}: not a run directory (no run.json)")
    try:
        raw = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{meta_file}: corrupt ({exc})") from None
    raw = _migrate(raw, meta_file)
    known = {f.name for f in fields(RunMeta)}
    meta = RunMeta(**{k: v for k, v in raw.items() if k in known})
    records: list[Record] = []
    skipped = 0
    rec_file = path / "records.jsonl"
    if rec_file.is_file():
        for line in rec_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                records.append(Record.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError, AttributeError, KeyError):
                skipped += 1
    if skipped:
        warnings.warn(
            DamagedRecordsWarning(
                f"{rec_file}: {skipped} line(s) are not records and were skipped (a torn "
                "write?); `harness run --resume` moves a torn last line aside"
            ),
            stacklevel=2,
        )
    return Run(meta=meta, records=records, path=path, skipped_lines=skipped)


def error_record(
    case: Case, status: str, message: str, case_id: str | None = None, **extra: Any
) -> Record:
    """The record of a case that was not measured (``error``, ``invalid``, ``skipped``):
    the one place such records are built, by the runner, the launcher, comparisons and
    ``serve-bench`` (whose case ids name its serving settings: ``case_id``)."""
    return Record(
        case_id=case_id or case.case_id,
        case=case.to_dict(),
        status=status,
        message=message,
        started_at=timestamp(),
        **extra,
    )


def merge_records(records: list[Record]) -> list[Record]:
    """One record per case id; samples of repeated processes (same case id, all ok) pooled."""
    merged: dict[str, Record] = {}
    for rec in records:
        prev = merged.get(rec.case_id)
        if prev is not None and prev.host.get("hardware") != rec.host.get("hardware"):
            raise HarnessError(
                f"{rec.case_id}: measured on different hardware ({prev.host.get('hardware')} "
                f"and {rec.host.get('hardware')}); samples are not pooled across hardware"
            )
        if prev is not None and prev.status == "ok" and rec.status == "ok":
            prev.samples = prev.samples + rec.samples
            prev.workload = prev.workload | {"processes": prev.workload.get("processes", 1) + 1}
        else:
            merged[rec.case_id] = Record.from_dict(rec.to_dict())
    return list(merged.values())
