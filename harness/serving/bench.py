"""``serve-bench``: capacity per checkpoint × backend × traffic × batching policy, as records.

For each prepared (checkpoint, backend) group — loaded, prepared and parity-checked exactly as
for closed-loop cases (:func:`harness.execution.prepared.prepare_group`) — and each traffic:

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
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from harness.errors import HarnessError
from harness.execution.options import RunOptions
from harness.execution.prepared import PreparedGroup, prepare_group
from harness.execution.recording import memory_facts
from harness.inputs.workloads import padded_batch
from harness.measure.memory import PeakRSS
from harness.records.results import Record, RunMeta, error_record, timestamp
from harness.records.store import RunStore, new_run_id
from harness.records.types import BatchingInfo, Scenario, ServingEnergy, Summary, TokenizerInfo
from harness.serving.batcher import Request, default_edges
from harness.serving.capacity import Capacity, find_capacity
from harness.serving.loadgen import (
    Batching,
    ScenarioResult,
    ScenarioSettings,
    require_loadgen,
    run_confirmed,
    run_scenario,
)
from harness.serving.spec import ServeSpec, serve_case_id
from harness.serving.traffic import Traffic, build_task_traffic, build_traffic
from harness.spec.sweep import Case

__all__ = ["run_serve_bench"]

#: ``("start", label)`` / ``("probe", (label, ScenarioResult))`` / ``("done", Record)``.
ServeEvent = tuple[str, Any]


def _batch_runner(
    group: PreparedGroup, traffic: Traffic, choices: int
) -> Callable[[list[Request]], None]:
    backend = group.backend
    if traffic.units:
        return _task_batch_runner(group, traffic)

    def run_batch(requests: list[Request]) -> None:
        rows = [traffic.rows[r.index] for r in requests]
        batch = padded_batch(rows, max(len(r) for r in rows), choices=choices)
        backend.run(backend.bind(batch))
        backend.sync()

    return run_batch


def _task_batch_runner(group: PreparedGroup, traffic: Traffic) -> Callable[[list[Request]], None]:
    """A batch of task units: every row of every unit in one call (a question's windows
    together), the output on the host, and each unit answered from its own rows."""
    backend = group.backend

    def run_batch(requests: list[Request]) -> None:
        units = [traffic.units[r.index] for r in requests]
        rows = [row for u in units for row in u.rows]
        out = backend.output(backend.run(backend.bind(padded_batch(rows, max(map(len, rows))))))
        at = 0
        for u in units:
            u.finish(out[at : at + len(u.rows)])
            at += len(u.rows)

    return run_batch


def _encode_pool(group: PreparedGroup, traffic: Traffic) -> None:
    """Retrieval traffic: the candidates encoded once by the backend served, before any
    query (as an index is built before a search service opens)."""
    if traffic.retrieval is None or traffic.retrieval.vectors is not None:
        return
    backend = group.backend
    start = time.perf_counter()
    vectors = [backend.output(backend.run(backend.bind(b))) for b in traffic.retrieval.pool]
    traffic.retrieval.set_pool(np.concatenate(vectors))
    traffic.task["pool_encode_s"] = time.perf_counter() - start
    traffic.task["search"] = traffic.retrieval.library


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


def latency_summary(latency: dict[str, float]) -> Summary:
    """LoadGen's latencies at capacity as the record's summary (seconds)."""
    return {
        "p50": latency["p50"],
        "p90": latency["p90"],
        "p95": latency["p95"],
        "p97": latency["p97"],
        "p99": latency["p99"],
        "p99.9": latency["p99.9"],
        "mean": latency["mean"],
        "min": latency["min"],
        "max": latency["max"],
    }


@dataclass
class _Serving:
    """One capacity case in progress: its group, traffic and policy, and the probes so far."""

    spec: ServeSpec
    case: Case
    group: PreparedGroup
    traffic: Traffic
    tokenizer: TokenizerInfo
    emit: Callable[[ServeEvent], None]
    probes: list[ScenarioResult] = field(default_factory=list)
    energy: dict[float, ServingEnergy] = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        return serve_case_id(
            self.spec,
            self.case.model.name,
            self.case.backend,
            self.traffic.name,
            str(self.case.policy),
            self.case.task,
        )

    @cached_property
    def batching(self) -> Batching:
        """The case's batcher settings; bucket edges from the traffic's lengths, once."""
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
        result = run_scenario(settings, self.batching, run_batch, self.traffic.lengths)
        if meter is not None:
            reading: ServingEnergy = {"queries": result.query_count}
            reading.update(meter.stop())
            self.energy[qps] = reading
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
        scenario: Scenario = {
            "kind": "capacity",
            "loadgen_version": offline.settings.get("loadgen_version"),
            "bound_s": spec.bound_s,
            "percentile": spec.percentile,
            "batching": cast(BatchingInfo, asdict(self.batching)),
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
        usage = getattr(group.backend, "usage", None)
        if usage is not None:  # graphs per shape bucket: the padding the buckets added
            scenario["graph_buckets"] = usage()
        if spec.price_per_hour is not None and capacity.qps > 0:
            scenario["price_per_hour"] = spec.price_per_hour
            scenario["cost_per_million"] = spec.price_per_hour / 3600 / capacity.qps * 1e6
        energy = self.energy.get(capacity.qps)
        joules = energy.get("joules") if energy else None
        if energy and joules is not None and energy.get("queries"):
            scenario["energy_per_request_j"] = joules / energy["queries"]
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
            summary=latency_summary(at_capacity.latency_s) if at_capacity else {},
            throughput={
                "capacity_qps": capacity.qps,
                "sequences_per_s": offline.completed_qps,
                "basis": "capacity_qps: highest LoadGen-valid Server load; sequences_per_s: "
                "Offline",
            },
            memory=memory_facts(memory, group),
            parity=group.parity,
            cold=group.cold,
            scenario=scenario,
            started_at=timestamp(),
            wall_s=wall_s,
        )


def _energy_meter(device: str) -> Any:
    if device != "cuda":
        return None
    from harness.measure.gpu import EnergyMeter

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
    from harness.inputs.tokenization import get_tokenizer

    assert opts.corpus is not None
    todo = [
        (t, p)
        for t in spec.traffic
        for p in spec.policies
        if serve_case_id(spec, case.model.name, case.backend, t, p, case.task) not in done
    ]
    if not todo:
        return  # a resumed run that finished this group already

    def fail(status: str, message: str, trace: str = "", **extra: Any) -> None:
        for t, p in todo:
            c = replace(case, language=t, policy=p)
            case_id = serve_case_id(spec, case.model.name, case.backend, t, p, case.task)
            rec = error_record(c, status, message, case_id, traceback=trace, **extra)
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
            vocab = group.ckpt.arch.vocab
            if case.task is None:
                traffic = build_traffic(name, opts.corpus, tok, spec.max_len, vocab)
            else:
                traffic = build_task_traffic(
                    case.task, name, opts.corpus, tok, spec.max_len, vocab, spec.task_settings
                )
                _encode_pool(group, traffic)
            _serve_traffic(spec, case, group, traffic, tok.info, store, emit, done)
    finally:
        group.backend.close()


def _serve_traffic(
    spec: ServeSpec,
    case: Case,
    group: PreparedGroup,
    traffic: Traffic,
    tokenizer: TokenizerInfo,
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
        reset = getattr(group.backend, "reset_usage", None)
        if reset is not None:
            reset()
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
                    s.batching,
                    run_batch,
                    traffic.lengths,
                )
            guess = 1.5 * spec.max_batch / max(full_batch_s, 1e-6)
            offline = _offline(spec, s.batching, run_batch, traffic, guess)
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
            message = f"{type(exc).__name__}: {exc}"
            rec = error_record(
                s.case, "error", message, s.case_id, traceback=traceback.format_exc()
            )
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
    from harness.records.env import collect_env

    if opts.corpus is None:
        raise HarnessError("serve-bench needs real sentences: a corpus directory")
    cases = spec.groups()
    planned = [
        serve_case_id(spec, c.model.name, c.backend, t, p, c.task)
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
            created=timestamp(),
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
