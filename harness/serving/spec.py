"""What a ``serve-bench`` run measures: its settings, validated, and its case identities.

A :class:`ServeSpec` is built from the command line (or read back from a run's ``run.json`` to
resume it); each (checkpoint, backend) pair becomes one prepared group (:meth:`group_case`),
and each group × traffic × batching policy one case, named by :func:`serve_case_id`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.serving.batcher import POLICIES
from harness.spec.config import ModelSpec
from harness.spec.sweep import Case
from harness.spec.tasks import TaskSettings, task_of

__all__ = [
    "SERVE_BACKENDS",
    "ServeSpec",
    "check_serve_backends",
    "serve_case_id",
    "task_model",
]

#: Backends that take any batch shape as it comes. ``cuda-graph`` captures one graph per shape
#: and ``compile`` recompiles per shape: under arbitrary traffic shapes they would measure
#: their compilers, not serving. ``cuda-graph-buckets`` serves them from graphs captured per
#: shape bucket beforehand.
SERVE_BACKENDS = (
    "cuda-graph-buckets",
    "eager",
    "torchscript",
    "onnxruntime",
    "onnxruntime-fused",
    "onnxruntime-int8",
    "onnxruntime-int8-static",
    "openvino",
    "openvino-int8",
)


def check_serve_backends(backends: tuple[str, ...]) -> None:
    for b in backends:
        if b not in SERVE_BACKENDS:
            raise HarnessError(
                f"backend {b!r} cannot serve arbitrary shapes; serve-bench takes "
                f"{', '.join(SERVE_BACKENDS)}"
            )


@dataclass(frozen=True)
class ServeSpec:
    models: tuple[ModelSpec, ...]
    backends: tuple[str, ...]
    traffic: tuple[str, ...]
    policies: tuple[str, ...] = ("longest", "bucket")
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    max_len: int = 128
    max_batch: int = 8
    max_delay_s: float = 0.005
    bound_s: float = 0.05
    percentile: float = 0.99
    min_queries: int = 1024
    min_duration_s: float = 5.0
    rel_tol: float = 0.05
    max_probes: int = 8
    #: Longest a Server probe may take at LoadGen's minimum query count: the search never
    #: offers less than ``min_queries / max_probe_s`` QPS.
    max_probe_s: float = 120.0
    buckets: int = 4
    price_per_hour: float | None = None
    options: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    #: XTREME task traffic (``--tasks``): each query one task unit, served with the task's head.
    tasks: tuple[str, ...] = ()
    task_settings: TaskSettings = field(default_factory=TaskSettings)

    def __post_init__(self) -> None:
        check_serve_backends(self.backends)
        for t in self.tasks:
            task_of(t)  # unknown task: one line
        if self.tasks and any("+" in t for t in self.traffic):
            raise HarnessError("task traffic takes one language per traffic, not a mix")
        for p in self.policies:
            if p not in POLICIES:
                raise HarnessError(
                    f"unknown batching policy {p!r} (policies: {', '.join(POLICIES)})"
                )
        if not 0.5 <= self.percentile < 1:
            raise HarnessError("--percentile must be in [0.5, 1)")
        if self.bound_s <= 0 or self.max_batch < 1 or self.max_delay_s < 0:
            raise HarnessError("the latency bound and --max-batch must be > 0, --max-delay >= 0")
        if not 0 < self.rel_tol < 1:
            raise HarnessError("--resolution must be between 0 and 1 (0.05 = a 5 % bracket)")
        if self.price_per_hour is not None and not self.price_per_hour >= 0:
            raise HarnessError("--price-per-hour must be >= 0")
        if self.max_len < 4:
            raise HarnessError("--max-len must be >= 4 (two special tokens and some text)")
        if self.min_queries < 1 or self.min_duration_s <= 0 or self.max_probes < 3:
            raise HarnessError("--min-queries >= 1, --min-duration > 0 and --max-probes >= 3")

    def group_case(self, model: ModelSpec, backend: str, task: str | None = None) -> Case:
        """The prepared group of a (checkpoint, backend[, task]): a task serves with its
        own head (the model spec passed in has it already, :func:`task_models`)."""
        seq = self.task_settings.qa_max_len if task == "qa" else self.max_len
        return Case(
            model=model,
            backend=backend,
            batch_size=self.max_batch,
            seq_len=seq,
            device=self.device,
            dtype=self.dtype,
            threads=self.threads,
            options=self.options.get(backend, ()),
            task=task,
            task_settings=self.task_settings,
        )

    def groups(self) -> list[Case]:
        """Every prepared group: checkpoint × backend, × task for task traffic."""
        if not self.tasks:
            return [self.group_case(m, b) for m in self.models for b in self.backends]
        return [
            self.group_case(task_model(m, t), b, t)
            for m in self.models
            for t in self.tasks
            for b in self.backends
        ]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = [m.name for m in self.models]
        out["task_settings"] = self.task_settings.to_dict()
        return out

    @classmethod
    def from_run(cls, config: dict[str, Any], where: str) -> ServeSpec:
        """The spec a serve run was started with (``run.json``), to resume it."""
        data = dict(config.get("serve") or {})
        models = config.get("models") or {}
        if not data or not models:
            raise HarnessError(f"{where}: not a serve-bench run (no serve settings to resume)")
        try:
            data["models"] = tuple(
                ModelSpec.from_dict(dict(models[name]), where) for name in data["models"]
            )
            for key in ("backends", "traffic", "policies"):
                data[key] = tuple(data[key])
            data["tasks"] = tuple(data.get("tasks", ()))
            data["task_settings"] = TaskSettings.from_dict(
                dict(data.get("task_settings") or {}), where
            )
            data["options"] = {
                b: tuple(tuple(kv) for kv in opts) for b, opts in data.get("options", {}).items()
            }
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise HarnessError(f"{where}: serve settings unreadable ({exc})") from None


def task_model(model: ModelSpec, task: str) -> ModelSpec:
    """The checkpoint with the head ``task`` serves with (an ONNX export keeps its own, and
    serves only the task of that head)."""
    import dataclasses

    head = task_of(task).head
    if model.head == head:
        return model
    if model.is_onnx_export:
        raise HarnessError(
            f"{model.name} is an ONNX export with a {model.head} head: it cannot serve the "
            f"{task} task, which needs a {head} head"
        )
    return dataclasses.replace(model, head=head)


def serve_case_id(
    spec: ServeSpec,
    model: str,
    backend: str,
    traffic: str,
    policy: str,
    task: str | None = None,
) -> str:
    pct = f"{100 * spec.percentile:g}"
    unit = f"/task-{task}" if task else ""
    return (
        f"{model}/serve/{backend}/{spec.device}/{spec.dtype}/t{spec.threads}{unit}/{traffic}"
        f"/{policy}/mb{spec.max_batch}/d{1e3 * spec.max_delay_s:g}ms"
        f"/p{pct}<={1e3 * spec.bound_s:g}ms"
    )
