"""``serve-bench``: capacity per checkpoint × backend × traffic × batching policy, as records.

For each prepared (checkpoint, backend) group — loaded, prepared and parity-checked exactly as
for closed-loop cases (:func:`harness.runner.prepare_group`) — and each traffic:

1. a short warm-up over the traffic's own shapes;
2. ``single-stream``: one query at a time, LoadGen's p90 latency (policy-independent, run once);
3. ``offline``: all queries at once, the batcher's maximum throughput, the search's upper end;
4. ``server`` probes at offered loads chosen by :func:`.capacity.find_capacity`, each judged
   valid or not by LoadGen (latency bound at its percentile, early stopping included).

Every probe's parsed LoadGen summary is kept in the record's ``scenario`` field.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import ModelSpec
from ..errors import HarnessError
from ..memory import PeakRSS
from ..results import Record, RunMeta
from ..runner import Group, RunOptions, error_record, prepare_group
from ..store import RunStore, new_run_id
from ..sweep import Case
from ..workloads import padded_batch
from .batcher import POLICIES, Request, default_edges
from .capacity import Capacity, find_capacity
from .loadgen import (
    Batching,
    ScenarioResult,
    ScenarioSettings,
    require_loadgen,
    run_confirmed,
    run_scenario,
)
from .traffic import Traffic, build_traffic

__all__ = [
    "SERVE_BACKENDS",
    "ServeSpec",
    "check_serve_backends",
    "run_serve_bench",
    "serve_case_id",
]

#: Backends that take any batch shape as it comes. ``cuda-graph`` captures one graph per shape
#: and ``compile`` recompiles per shape: under arbitrary traffic shapes they would measure
#: their compilers, not serving.
SERVE_BACKENDS = ("eager", "torchscript", "onnxruntime", "onnxruntime-fused", "onnxruntime-int8")

#: ``("start", label)`` / ``("probe", (label, ScenarioResult))`` / ``("done", Record)``.
ServeEvent = tuple[str, Any]


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

    def __post_init__(self) -> None:
        check_serve_backends(self.backends)
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

    def group_case(self, model: ModelSpec, backend: str) -> Case:
        return Case(
            model=model,
            backend=backend,
            batch_size=self.max_batch,
            seq_len=self.max_len,
            device=self.device,
            dtype=self.dtype,
            threads=self.threads,
            options=self.options.get(backend, ()),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = [m.name for m in self.models]
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
            data["options"] = {
                b: tuple(tuple(kv) for kv in opts) for b, opts in data.get("options", {}).items()
            }
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise HarnessError(f"{where}: serve settings unreadable ({exc})") from None


def serve_case_id(spec: ServeSpec, model: str, backend: str, traffic: str, policy: str) -> str:
    pct = f"{100 * spec.percentile:g}"
    return (
        f"{model}/serve/{backend}/{spec.device}/{spec.dtype}/t{spec.threads}/{traffic}/{policy}"
        f"/mb{spec.max_batch}/d{1e3 * spec.max_delay_s:g}ms/p{pct}<={1e3 * spec.bound_s:g}ms"
    )


def _batch_runner(group: Group, traffic: Traffic, choices: int) -> Callable[[list[Request]], None]:
    backend = group.backend

    def run_batch(requests: list[Request]) -> None:
        rows = [traffic.rows[r.index] for r in requests]
        batch = padded_batch(rows, max(len(r) for r in rows), choices=choices)
        backend.run(backend.bind(batch))
        backend.sync()

    return run_batch


def _warm_up(run_batch: Callable[[list[Request]], None], traffic: Traffic, max_batch: int) -> float:
    """A few batches at the traffic's shapes; returns the seconds of one full batch."""
    n = len(traffic.rows)
    full = 0.0
    for size in (1, max_batch, max_batch):
        reqs = [Request(i, (i * 7919) % n, 0, 0.0) for i in range(size)]
        start = time.perf_counter()
        run_batch(reqs)
        full = time.perf_counter() - start
    return full


def _offline(
    spec: ServeSpec, batching: Batching, run_batch: Any, traffic: Traffic, guess_qps: float
) -> ScenarioResult:
    """Offline at LoadGen's expected QPS; rerun larger while the run was too short."""
    result: ScenarioResult | None = None
    expected = guess_qps
    for _ in range(3):
        settings = ScenarioSettings(
            "offline",
            target_qps=expected,
            min_queries=spec.min_queries,
            min_duration_s=spec.min_duration_s,
        )
        result = run_scenario(settings, batching, run_batch, traffic.lengths)
        if result.error or result.valid or result.completed_qps <= 0:
            break
        expected = 1.3 * result.completed_qps
    assert result is not None
    return result


@dataclass
class _Serving:
    """One capacity case in progress: its group, traffic and policy, and the probes so far."""

    spec: ServeSpec
    case: Case
    group: Group
    traffic: Traffic
    tokenizer: dict[str, Any]
    emit: Callable[[ServeEvent], None]
    probes: list[ScenarioResult] = field(default_factory=list)
    energy: dict[float, dict[str, Any]] = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        return serve_case_id(
            self.spec,
            self.case.model.name,
            self.case.backend,
            self.traffic.name,
            str(self.case.policy),
        )

    def batching(self) -> Batching:
        policy = str(self.case.policy)
        edges = default_edges(self.traffic.lengths, self.spec.buckets) if policy == "bucket" else ()
        return Batching(self.spec.max_batch, self.spec.max_delay_s, policy, edges)

    def probe(self, run_batch: Callable[[list[Request]], None]) -> Callable[[float], bool]:
        spec = self.spec

        def probe(qps: float) -> bool:
            runs = run_confirmed(lambda n: self._server_run(qps, n, run_batch), spec.min_queries)
            for result in runs:
                if result.error:
                    raise RuntimeError(f"a batch failed at {qps:.1f} QPS: {result.error}")
            return runs[-1].valid

        return probe

    def _server_run(
        self, qps: float, queries: int, run_batch: Callable[[list[Request]], None]
    ) -> ScenarioResult:
        spec = self.spec
        settings = ScenarioSettings(
            "server",
            target_qps=qps,
            bound_s=spec.bound_s,
            percentile=spec.percentile,
            min_queries=queries,
            min_duration_s=spec.min_duration_s,
        )
        meter = _energy_meter(spec.device)
        result = run_scenario(settings, self.batching(), run_batch, self.traffic.lengths)
        if meter is not None:
            self.energy[qps] = meter.stop() | {"queries": result.query_count}
        self.probes.append(result)
        self.emit(("probe", (self.case_id, result)))
        return result

    def record(
        self,
        capacity: Capacity,
        offline: ScenarioResult,
        single: ScenarioResult,
        memory: PeakRSS,
        wall_s: float,
    ) -> Record:
        spec, group = self.spec, self.group
        scenario: dict[str, Any] = {
            "kind": "capacity",
            "loadgen_version": offline.settings.get("loadgen_version"),
            "bound_s": spec.bound_s,
            "percentile": spec.percentile,
            "batching": asdict(self.batching()),
            "traffic": self.traffic.facts(),
            "single_stream": single.to_dict(),
            "offline": offline.to_dict(),
            # LoadGen's effective settings are kept once (offline's); probes differ only in QPS.
            "probes": [p.to_dict() | {"settings": {}} for p in self.probes],
            "capacity_qps": capacity.qps,
            "fail_qps": capacity.fail_qps,
            "resolution": capacity.resolution,
            "search_stop": capacity.stop,
        }
        if spec.price_per_hour is not None and capacity.qps > 0:
            scenario["price_per_hour"] = spec.price_per_hour
            scenario["cost_per_million"] = spec.price_per_hour / 3600 / capacity.qps * 1e6
        energy = self.energy.get(capacity.qps)
        if energy and energy.get("joules") is not None and energy["queries"]:
            scenario["energy_per_request_j"] = energy["joules"] / energy["queries"]
            scenario["energy"] = energy
        at_capacity = next(
            (p for p in self.probes if p.target_qps == capacity.qps and p.valid), None
        )
        bound = f"p{100 * spec.percentile:g} <= {1e3 * spec.bound_s:g} ms"
        return Record(
            case_id=self.case_id,
            case=self.case.to_dict(),
            status="ok",
            message="" if capacity.qps > 0 else f"no offered load met {bound}",
            checkpoint=group.ckpt.describe(),
            tokenizer=self.tokenizer,
            backend=group.info,
            workload={"kind": "serving", **self.traffic.facts()},
            summary=dict(at_capacity.latency_s) if at_capacity else {},
            throughput={
                "capacity_qps": capacity.qps,
                "sequences_per_s": offline.completed_qps,
                "basis": "capacity_qps: highest LoadGen-valid Server load; sequences_per_s: "
                "Offline",
            },
            memory={
                "peak_rss_delta_bytes": memory.peak_delta(),
                "rss_before_bytes": memory.before,
                "method": memory.method,
                "param_bytes": group.ckpt.weights.param_bytes,
            },
            parity=group.parity,
            cold=group.cold,
            scenario=scenario,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            wall_s=wall_s,
        )


def _energy_meter(device: str) -> Any:
    if device != "cuda":
        return None
    from ..gpu import EnergyMeter

    meter = EnergyMeter()
    meter.start()
    return meter


def _serve_group(
    spec: ServeSpec,
    case: Case,
    store: RunStore,
    opts: RunOptions,
    emit: Callable[[ServeEvent], None],
    done: set[str],
) -> None:
    from ..tokenize import get_tokenizer

    assert opts.corpus is not None
    todo = [
        (t, p)
        for t in spec.traffic
        for p in spec.policies
        if serve_case_id(spec, case.model.name, case.backend, t, p) not in done
    ]
    if not todo:
        return  # a resumed run that finished this group already

    def fail(status: str, message: str, trace: str = "", **extra: Any) -> None:
        for t, p in todo:
            c = replace(case, language=t, policy=p)
            rec = error_record(c, status, message, traceback=trace, **extra)
            rec.case_id = serve_case_id(spec, case.model.name, case.backend, t, p)
            store.append(rec)
            emit(("done", rec))

    emit(("start", f"{case.model.name} · {case.backend}: load and prepare"))
    try:
        group = prepare_group(case, opts)
    except Exception as exc:
        fail("error", f"prepare failed: {type(exc).__name__}: {exc}", traceback.format_exc())
        return
    try:
        if not group.parity["ok"]:
            fail("invalid", "outputs disagree with eager float32", parity=group.parity)
            return
        tok = get_tokenizer(case.model.source, group.ckpt.path, opts.corpus, opts.cache_dir)
        for name in spec.traffic:
            if not any(t == name for t, _ in todo):
                continue
            traffic = build_traffic(name, opts.corpus, tok, spec.max_len, group.ckpt.arch.vocab)
            _serve_traffic(spec, case, group, traffic, tok.info, store, emit, done)
    finally:
        group.backend.close()


def _serve_traffic(
    spec: ServeSpec,
    case: Case,
    group: Group,
    traffic: Traffic,
    tokenizer: dict[str, Any],
    store: RunStore,
    emit: Callable[[ServeEvent], None],
    done: set[str],
) -> None:
    run_batch = _batch_runner(group, traffic, case.model.choices)
    single: ScenarioResult | None = None
    for policy in spec.policies:
        s = _Serving(
            spec,
            replace(case, language=traffic.name, policy=policy),
            group,
            traffic,
            tokenizer,
            emit,
        )
        if s.case_id in done:
            continue
        emit(("start", s.case_id))
        memory = PeakRSS()
        memory.start()
        start = time.perf_counter()
        try:
            full_batch_s = _warm_up(run_batch, traffic, spec.max_batch)
            if single is None:
                single = run_scenario(
                    ScenarioSettings(
                        "single-stream",
                        bound_s=spec.bound_s,
                        min_queries=spec.min_queries,
                        min_duration_s=spec.min_duration_s,
                    ),
                    s.batching(),
                    run_batch,
                    traffic.lengths,
                )
            guess = 1.5 * spec.max_batch / max(full_batch_s, 1e-6)
            offline = _offline(spec, s.batching(), run_batch, traffic, guess)
            if offline.error:
                raise RuntimeError(f"a batch failed offline: {offline.error}")
            capacity = find_capacity(
                s.probe(run_batch),
                upper=offline.completed_qps,
                rel_tol=spec.rel_tol,
                max_probes=spec.max_probes,
                floor=max(offline.completed_qps / 64, spec.min_queries / spec.max_probe_s),
            )
            rec = s.record(capacity, offline, single, memory, time.perf_counter() - start)
        except Exception as exc:
            rec = error_record(
                s.case, "error", f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
            )
            rec.case_id = s.case_id
        store.append(rec)
        emit(("done", rec))


def run_serve_bench(
    spec: ServeSpec,
    out: Path,
    opts: RunOptions,
    emit: Callable[[ServeEvent], None] = lambda _: None,
    resume: Path | None = None,
) -> Path:
    """Measure every (checkpoint, backend, traffic, policy) into a new run directory under
    ``out`` (or the cases ``resume``'s run has not finished); returns the run's path."""
    require_loadgen()
    from ..env import collect_env

    if opts.corpus is None:
        raise HarnessError("serve-bench needs real sentences: a corpus directory")
    cases = [spec.group_case(m, b) for m in spec.models for b in spec.backends]
    planned = [
        serve_case_id(spec, c.model.name, c.backend, t, p)
        for c in cases
        for t in spec.traffic
        for p in spec.policies
    ]
    if resume is not None:
        store = RunStore.open(resume)
        done = store.done()
    else:
        meta = RunMeta(
            run_id=new_run_id("serve"),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            kind="serve",
            env=collect_env(),
            config={"serve": spec.to_dict(), "models": {m.name: m.to_dict() for m in spec.models}},
            planned=planned,
        )
        store = RunStore.create(out, meta)
        done = set()
    for case in cases:
        _serve_group(spec, case, store, opts, emit, done)
    return store.path
