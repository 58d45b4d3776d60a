"""One MLPerf LoadGen scenario over a :class:`BatchingServer`, and its parsed summary.

LoadGen (``mlcommons-loadgen``, the ``[serve]`` extra) owns the clock: it schedules queries
(Poisson arrivals in ``server``, everything at once in ``offline``, one after another in
``single-stream``), measures each query's latency from its *scheduled* time, and applies
MLPerf's validity rules (minimum duration and query count, the latency bound at its
percentile, and early stopping: enough queries to be confident of the percentile). The result
is read back from LoadGen's own detail log, never recomputed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from harness.errors import HarnessError
from harness.records.types import ScenarioRun
from harness.serving.batcher import DynamicBatcher, Request
from harness.serving.server import BatchingServer

__all__ = [
    "SCENARIOS",
    "Batching",
    "ScenarioResult",
    "ScenarioSettings",
    "loadgen_unavailable",
    "require_loadgen",
    "run_confirmed",
    "run_scenario",
]

SCENARIOS = ("server", "offline", "single-stream")
INSTALL_HINT = "pip install 'xlmr-harness[serve]' (mlcommons-loadgen)"


def loadgen_unavailable() -> str | None:
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        return f"MLPerf LoadGen is not installed: {INSTALL_HINT}"
    return None


def require_loadgen() -> None:
    why = loadgen_unavailable()
    if why is not None:
        raise HarnessError(why)


@dataclass(frozen=True)
class Batching:
    """How the dynamic batcher groups requests (see :mod:`.batcher`)."""

    max_batch: int = 8
    max_delay_s: float = 0.005
    policy: str = "longest"
    edges: tuple[int, ...] = ()
    #: Requests that may wait; beyond it they are shed (a bounded queue, bounded memory).
    max_queue: int = 4096

    def batcher(self, delay: bool = True) -> DynamicBatcher:
        return DynamicBatcher(
            self.max_batch, self.max_delay_s if delay else 0.0, self.policy, self.edges
        )


@dataclass(frozen=True)
class ScenarioSettings:
    scenario: str
    #: ``server``: offered load (Poisson arrivals). ``offline``: LoadGen's expected QPS, which
    #: only sizes the query count.
    target_qps: float = 0.0
    bound_s: float = 0.05
    percentile: float = 0.99
    min_queries: int = 1024
    min_duration_s: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}")


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    target_qps: float
    #: LoadGen's verdict (``result_validity == VALID``): every rule met, early stopping too.
    valid: bool
    invalid_reason: str
    perf_constraints_met: bool
    early_stopping_met: bool | None
    query_count: int
    overlatency_count: int
    completed_qps: float
    scheduled_qps: float
    #: ``p50``, ``p90``, ``p95``, ``p97``, ``p99``, ``p99.9``, ``mean``, ``min``, ``max`` in s.
    latency_s: dict[str, float]
    #: Batch size → number of batches the worker ran.
    batch_sizes: dict[int, int]
    #: Share of the scenario's duration the worker spent running batches.
    busy_share: float
    duration_s: float
    error: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    #: Queries answered unserved because the queue was full (overload), and its peak depth.
    shed: int = 0
    max_queue_depth: int = 0

    @property
    def mean_batch(self) -> float:
        n = sum(self.batch_sizes.values())
        return sum(k * v for k, v in self.batch_sizes.items()) / n if n else 0.0

    def to_dict(self) -> ScenarioRun:
        out = cast(ScenarioRun, asdict(self))  # asdict writes ScenarioRun's keys
        out["batch_sizes"] = {str(k): v for k, v in sorted(self.batch_sizes.items())}
        out["mean_batch"] = self.mean_batch
        return out


def read_detail_log(path: Path) -> dict[str, Any]:
    """LoadGen's ``mlperf_log_detail.txt`` as ``{key: value}`` (last value wins)."""
    out: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entry = json.loads(line[len(":::MLLOG ") :])
            except json.JSONDecodeError:
                continue
            out[entry["key"]] = entry.get("value")
    return out


_PERCENTILES = {
    "p50": "50.00",
    "p90": "90.00",
    "p95": "95.00",
    "p97": "97.00",
    "p99": "99.00",
    "p99.9": "99.90",
}


def parse_result(
    log: dict[str, Any], settings: ScenarioSettings, server: BatchingServer
) -> ScenarioResult:
    def ns(key: str) -> float:
        value = log.get(key)
        return float(value) / 1e9 if value is not None else float("nan")

    latency = {
        name: ns(f"result_{pct}_percentile_latency_ns") for name, pct in _PERCENTILES.items()
    }
    latency |= {k: ns(f"result_{k}_latency_ns") for k in ("mean", "min", "max")}
    completed = float(
        log.get("result_completed_samples_per_sec") or log.get("result_samples_per_second") or 0.0
    )
    count = int(log.get("result_query_count") or 0)
    if settings.scenario == "offline":  # one query of many samples, answered by max latency
        count = round(completed * latency["max"])
    elif settings.scenario == "single-stream" and latency["mean"] > 0:
        completed = 1 / latency["mean"]
    duration = count / completed if completed else 0.0
    effective = {k[len("effective_") :]: v for k, v in log.items() if k.startswith("effective_")}
    reason = str(log.get("result_invalid_reason") or "").strip()
    if not reason and log.get("early_stopping_met") is False:
        reason = "Early stopping not met: too few queries to be confident of the percentile."
    if server.error is not None:
        reason = f"a batch failed: {type(server.error).__name__}"
    if server.shed:
        reason = (
            f"overloaded: {server.shed} queries shed, the queue full at {server.max_queue} "
            f"requests" + (f"; LoadGen: {reason}" if reason else "")
        )
    effective["loadgen_version"] = log.get("loadgen_version")
    return ScenarioResult(
        scenario=settings.scenario,
        target_qps=settings.target_qps,
        valid=log.get("result_validity") == "VALID" and server.error is None and not server.shed,
        invalid_reason=reason,
        perf_constraints_met=bool(log.get("result_perf_constraints_met")),
        early_stopping_met=log.get("early_stopping_met"),
        query_count=count,
        overlatency_count=int(log.get("result_overlatency_query_count") or 0),
        completed_qps=completed,
        scheduled_qps=float(log.get("result_scheduled_samples_per_sec") or 0.0),
        latency_s=latency,
        batch_sizes=dict(server.batch_sizes),
        busy_share=server.busy_s / duration if duration else 0.0,
        shed=server.shed,
        max_queue_depth=server.max_depth,
        duration_s=duration,
        error="" if server.error is None else f"{type(server.error).__name__}: {server.error}",
        settings=effective,
    )


def _test_settings(lg: Any, s: ScenarioSettings) -> Any:
    ts = lg.TestSettings()
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_query_count = s.min_queries
    ts.min_duration_ms = int(s.min_duration_s * 1000)
    ts.qsl_rng_seed = ts.sample_index_rng_seed = ts.schedule_rng_seed = s.seed
    if s.scenario == "server":
        ts.scenario = lg.TestScenario.Server
        ts.server_target_qps = s.target_qps
        ts.server_target_latency_ns = int(s.bound_s * 1e9)
        ts.server_target_latency_percentile = s.percentile
    elif s.scenario == "offline":
        ts.scenario = lg.TestScenario.Offline
        ts.offline_expected_qps = max(1.0, s.target_qps)
    else:
        ts.scenario = lg.TestScenario.SingleStream
        ts.single_stream_expected_latency_ns = int(s.bound_s * 1e9)
        ts.single_stream_target_latency_percentile = 0.9
    return ts


def run_scenario(
    settings: ScenarioSettings,
    batching: Batching,
    run_batch: Any,
    lengths: list[int],
) -> ScenarioResult:
    """Run one LoadGen scenario: queries are indices into ``lengths`` (the traffic's token
    counts); ``run_batch(requests)`` serves one batch; at most ``batching.max_queue`` wait
    (the rest are shed). Blocks until LoadGen is done."""
    require_loadgen()
    import mlperf_loadgen as lg

    # A single-stream query is alone by definition: waiting for company only adds latency.
    server = BatchingServer(
        batching.batcher(delay=settings.scenario == "server"),
        run_batch,
        _complete(lg),
        # Offline issues every sample at once: its queue is the whole run, never shed.
        max_queue=batching.max_queue if settings.scenario != "offline" else 2**62,
    )

    def issue(samples: list[Any]) -> None:
        now = server.clock()
        server.submit([Request(s.id, s.index, lengths[s.index], now) for s in samples])

    sut = lg.ConstructSUT(issue, server.flush)
    qsl = lg.ConstructQSL(len(lengths), len(lengths), lambda _: None, lambda _: None)
    with tempfile.TemporaryDirectory(prefix="harness-loadgen-") as tmp:
        log_settings = lg.LogSettings()
        log_settings.log_output.outdir = tmp
        log_settings.log_output.copy_summary_to_stdout = False
        try:
            with server:
                lg.StartTestWithLogSettings(sut, qsl, _test_settings(lg, settings), log_settings)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        log = read_detail_log(Path(tmp) / "mlperf_log_detail.txt")
    return parse_result(log, settings, server)


def _complete(lg: Any) -> Any:
    def done(batch: list[Request]) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(r.id, 0, 0) for r in batch])

    return done


def run_confirmed(
    run_once: Callable[[int], ScenarioResult], min_queries: int
) -> tuple[ScenarioResult, ...]:
    """A Server probe judged as LoadGen advises: a run that met the percentile but failed only
    early stopping (a few slow queries among the minimum count, too few to be confident) is run
    once more with twice the queries, and that run decides. Returns the runs, the deciding
    one last. On a shared machine one hiccup otherwise fails a load well below capacity."""
    first = run_once(min_queries)
    ambiguous = (
        not first.valid
        and not first.error
        and first.perf_constraints_met
        and first.early_stopping_met is False
    )
    return (first, run_once(2 * min_queries)) if ambiguous else (first,)
