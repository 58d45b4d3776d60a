"""Sweeps expand into an explicit, ordered list of :class:`Case` before anything runs.

A case is the frozen question (torch.utils.benchmark's ``TaskSpec``): the key that records,
comparisons and resumption all agree on. Cases are ordered by (model, backend) group so each
group prepares once, and by cost inside a group so a shape that runs out of memory lets the
runner skip the larger ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from harness.errors import HarnessError
from harness.spec.config import (
    DTYPES,
    MeasureSpec,
    ModelSpec,
    _check_keys,
    _typed,
    read_toml,
)
from harness.spec.tasks import TaskSettings, task_of

if TYPE_CHECKING:
    from harness.records.types import CaseInfo

__all__ = [
    "DEVICES",
    "POLICIES",
    "Case",
    "SweepSpec",
    "load_sweep",
]

DEVICES = ("cpu", "cuda")
#: Padding policies for real-text batches: pad every batch to the max length; pad to the
#: longest sentence of each batch in corpus order; sort the case's sentences by length first,
#: then pad per batch; bucket the language's whole measured pool by length and take batches
#: spread over it (:func:`harness.inputs.textload.bucket_batches`).
POLICIES = ("fixed", "longest", "sorted", "bucket")


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement: a checkpoint on a backend at one shape (or one language workload)."""

    model: ModelSpec
    backend: str
    batch_size: int
    seq_len: int
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    language: str | None = None
    policy: str | None = None
    lang_batches: int = 8
    options: tuple[tuple[str, str], ...] = ()
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    #: An XTREME task shape (:mod:`harness.spec.tasks`): the unit a call serves
    #: ``batch_size`` of; None for plain sentences or synthetic ids.
    task: str | None = None
    task_settings: TaskSettings = field(default_factory=TaskSettings)

    @property
    def key(self) -> str:
        """Identity of the case *without* the checkpoint: what two checkpoints are paired on."""
        parts = [self.backend, self.device, self.dtype, f"b{self.batch_size}", f"s{self.seq_len}"]
        parts.append(f"t{self.threads}")
        if self.language is not None:
            parts += [self.language, str(self.policy), f"n{self.lang_batches}"]
        if self.task is not None:
            t = self.task_settings
            detail = {
                "qa": f"-d{t.doc_stride}-c{t.qa_context_chars}",
                "retrieval": f"-p{t.retrieval_pool}",
            }.get(self.task, "")
            parts.append(f"task-{self.task}{detail}")
        return "/".join(parts)

    @property
    def case_id(self) -> str:
        return f"{self.model.name}/{self.key}"

    @property
    def group_key(self) -> tuple[str, str, str, str]:
        """Cases that share one loaded checkpoint (with one head) and one prepared backend."""
        return (self.model.name, self.model.head, self.backend, self.dtype)

    def to_dict(self) -> CaseInfo:
        # asdict writes exactly CaseInfo's keys (options as pairs, the specs as objects).
        return cast("CaseInfo", asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Case:
        data = dict(data)
        model = ModelSpec.from_dict(dict(data.pop("model")))
        measure = MeasureSpec(**data.pop("measure"))
        options = tuple(tuple(kv) for kv in data.pop("options", ()))
        settings = TaskSettings(**data.pop("task_settings", {}) or {})
        return cls(  # type: ignore[arg-type]
            model=model, measure=measure, options=options, task_settings=settings, **data
        )


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What a sweep covers. Loaded from a TOML file (built-in: ``harness/builtin/sweeps``)
    and/or CLI flags."""

    name: str = "sweep"
    models: tuple[str, ...] = ("xlmr-tiny",)
    backends: tuple[str, ...] = ("eager",)
    batch_sizes: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (32,)
    device: str = "cpu"
    dtype: str = "float32"
    #: Several dtypes in one run (default: just ``dtype``); each is its own prepared group.
    dtypes: tuple[str, ...] = ()
    threads: int = 1
    synthetic: bool = True
    languages: tuple[str, ...] = ()
    policies: tuple[str, ...] = ("longest",)
    #: Batch sizes for language cases (default: ``batch_sizes``).
    lang_batch_sizes: tuple[int, ...] = ()
    lang_max_len: int = 128
    lang_batches: int = 8
    corpus: str | None = None
    isolate: bool = True
    #: Run the whole sweep this many times (fresh worker processes each time when isolated):
    #: the CI gate then treats runs, not calls, as replicates.
    repeats: int = 1
    #: Per-backend settings, e.g. ``{"onnxruntime": {"graph_optimization_level": "basic"}}``.
    #: Not part of a case's key: a comparison pairs cases across settings and says they differ.
    backend_options: dict[str, dict[str, str]] = field(default_factory=dict)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    #: XTREME task shapes to serve the languages as (``pairs``, ``tagging``, ``qa``,
    #: ``retrieval``); with tasks, every language case is a task case.
    tasks: tuple[str, ...] = ()
    #: Also measure each language's English side (``deu@eng``): the same content in English,
    #: the reference a language's cost is a ratio to.
    english: bool = False
    task: TaskSettings = field(default_factory=TaskSettings)

    def __post_init__(self) -> None:
        for key in ("models", "backends", "batch_sizes", "seq_lens"):
            if not getattr(self, key):
                raise HarnessError(f"sweep: {key} must not be empty")
        for key in ("batch_sizes", "seq_lens", "lang_batch_sizes"):
            for value in getattr(self, key):
                _typed("sweep", key, value, int)
                if value <= 0:
                    raise HarnessError(f"sweep: {key} must be > 0, got {value}")
        for key in ("threads", "lang_max_len", "lang_batches", "repeats"):
            if _typed("sweep", key, getattr(self, key), int) <= 0:
                raise HarnessError(f"sweep: {key} must be > 0, got {getattr(self, key)}")
        if self.device not in DEVICES:
            raise HarnessError(f"sweep: unknown device {self.device!r} (known: cpu, cuda)")
        for dtype in (self.dtype, *self.dtypes):
            if dtype not in DTYPES:
                raise HarnessError(f"sweep: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
            if dtype == "tf32" and self.device != "cuda":
                raise HarnessError("sweep: tf32 is a CUDA matmul mode; use float32 on cpu")
        for policy in self.policies:
            if policy not in POLICIES:
                raise HarnessError(
                    f"sweep: unknown padding policy {policy!r} ({', '.join(POLICIES)})"
                )
        if not self.synthetic and not self.languages:
            raise HarnessError("sweep: synthetic = false needs at least one language")
        for name in self.tasks:
            task_of(name)
        if self.tasks and not self.languages:
            raise HarnessError("sweep: tasks are built from real text: give --languages")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sweep") -> SweepSpec:
        _check_keys(where, data, cls)
        data = dict(data)
        measure = data.pop("measure", {})
        if not isinstance(measure, dict):
            raise HarnessError(f"{where}: [measure] must be a table")
        task = data.pop("task", {})
        if not isinstance(task, dict):
            raise HarnessError(f"{where}: [task] must be a table")
        options = data.get("backend_options", {})
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise HarnessError(f"{where}: [backend_options.NAME] must be tables")
        for key in (
            "models",
            "backends",
            "batch_sizes",
            "seq_lens",
            "languages",
            "policies",
            "lang_batch_sizes",
            "dtypes",
            "tasks",
        ):
            if key in data:
                value = data[key]
                if not isinstance(value, list):
                    raise HarnessError(f"{where}: {key} must be a list, got {value!r}")
                data[key] = tuple(value)
        return cls(
            measure=MeasureSpec.from_dict(measure),
            task=TaskSettings.from_dict(task, f"{where} [task]"),
            **data,
        )

    def replace(self, **changes: Any) -> SweepSpec:
        """A copy with CLI overrides applied (``None`` values are ignored)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update({k: v for k, v in changes.items() if v is not None})
        return SweepSpec(**current)


def load_sweep(path: Path) -> SweepSpec:
    """A sweep file, or the name of a built-in sweep (``default``, ``smoke``)."""
    from harness.spec.config import BUILTIN_SWEEPS_DIR

    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        builtin = BUILTIN_SWEEPS_DIR / f"{path.name}.toml"
        if not builtin.is_file():
            known = ", ".join(sorted(p.stem for p in BUILTIN_SWEEPS_DIR.glob("*.toml")))
            raise HarnessError(f"unknown sweep {path.name!r} (a TOML file, or built-in: {known})")
        path = builtin
    return SweepSpec.from_dict(read_toml(path), where=str(path))
