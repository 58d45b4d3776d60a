"""The typed parts of a record: what each sub-record of :class:`harness.records.results.Record` holds.

Records are JSON lines read by other tools long after a run, so each part is a ``TypedDict``:
the file stays plain JSON objects (no converter between disk and memory, and records of
older schema versions load as they are), while mypy checks every key a writer sets and every
key a reader asks for, and :mod:`harness.records.schema` publishes the same keys and types as JSON
Schema. Every key is optional (``total=False``): an ``error`` record has none of them, and
older records lack the newer ones. One module writes each part (named in each docstring).
"""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "Ceiling",
    "Cold",
    "Compute",
    "Energy",
    "GpuFacts",
    "Interleaved",
    "Kernels",
    "Memory",
    "Parity",
    "RealTextCheck",
    "Roofline",
    "Summary",
    "Throughput",
    "Workload",
    "statistic",
]


#: Statistics of the timed samples (seconds), per-batch normalized (:mod:`harness.stats.summary`);
#: ``rel_ci`` is the relative half-width of the 95 % CI of the median (``inf`` with too few
#: samples). serve-bench records hold LoadGen's latency percentiles at capacity instead
#: (p50 … p99.9, mean, min, max). Functional form: ``p99.9`` is not a Python name.
Summary = TypedDict(
    "Summary",
    {
        "n": int,
        "mean": float,
        "std": float,
        "min": float,
        "p50": float,
        "p90": float,
        "p95": float,
        "p97": float,
        "p99": float,
        "p99.9": float,
        "max": float,
        "iqr": float,
        "rel_ci": float,
        "warnings": list[str],
        "unstable": bool,
    },
    total=False,
)


class Throughput(TypedDict, total=False):
    """Work of all timed calls over their summed time (:mod:`harness.execution.runner`); for real text
    also the no-padding ceiling (:mod:`harness.execution.realtext`)."""

    sequences_per_s: float
    tokens_per_s: float
    real_tokens_per_s: float
    basis: str
    ceiling_real_tokens_per_s: float
    real_tokens_per_s_at_batch_p50: float
    share_of_ceiling: float
    #: serve-bench: the highest LoadGen-valid Server load.
    capacity_qps: float
    #: Task cases: task units (pairs, sentences, questions, queries) per second.
    units_per_s: float


class Memory(TypedDict, total=False):
    """Resident memory of the measuring process (:func:`harness.execution.recording.memory_facts`)."""

    peak_rss_delta_bytes: int
    rss_before_bytes: int
    method: str
    param_bytes: int


class Cold(TypedDict, total=False):
    """One-time costs, seconds unless named bytes (:mod:`harness.execution.runner`)."""

    load_s: float
    prepare_s: float
    prepare_peak_rss_bytes: int
    bind_s: float
    first_call_s: float


class RealTextCheck(TypedDict, total=False):
    """Outputs against eager float32: exact backends by max |diff| (:mod:`harness.measure.parity`),
    approximate ones by cosine and top-1 (:mod:`harness.measure.accuracy`). Over a real-text case's
    own batches (:mod:`harness.execution.realtext`) it also counts them."""

    ok: bool
    reference: str
    kind: str
    max_abs_diff: float | None
    tolerance: float
    non_finite: str
    shape: list[int]
    rows: int
    cosine_mean: float
    cosine_min: float
    min_cosine: float
    top1_agreement: float
    batches: int


class Parity(RealTextCheck, total=False):
    """The group's check on a padded probe batch; unchecked when there is no reference (an
    ONNX export given without weights); for real text, the check on the case's own batches."""

    checked: bool
    note: str
    probe_shape: list[int]
    real_text: RealTextCheck


class Bucket(TypedDict, total=False):
    """One length bucket a bucketed real-text workload drew a batch from."""

    bucket: int
    of: int
    min_len: int
    max_len: int
    pad_share: float


class Ceiling(TypedDict, total=False):
    what: str
    shapes: list[list[int]]
    p50_by_batch_s: list[float]
    samples: list[float]


class Interleaved(TypedDict, total=False):
    """Where a case sat in an interleaved comparison (:mod:`harness.comparison.interleave`)."""

    rounds: int
    #: Timed calls per arm per round; call k of ``samples`` ran in round ``k // block``.
    block: int
    #: Untimed calls at the start of every block (the previous arm's leftovers).
    block_warmup: int
    arms: int
    seed: int
    process: int
    #: This arm's place in each round's order (0 = first).
    positions: list[int]
    #: Its place in the order the arms were prepared, and first warmed up for this case
    #: (both rotated across processes, so no arm is always first).
    prepared_position: int
    warmup_position: int
    #: Seconds of every block's warm-up calls, in order.
    block_warmup_s: list[float]
    #: Timed calls of the arm run on its own after the rounds (call k ran batch k % n).
    solo: list[float]


class TaskFacts(TypedDict, total=False):
    """What one unit of an XTREME task shape costs (:mod:`harness.inputs.tasks`)."""

    task: str
    unit: str
    units_per_call: float
    #: Forward passes per unit: a QA question's windows; 1 for the other tasks.
    forward_passes_per_unit: float
    tokens_per_unit: float
    real_tokens_per_unit: float
    pad_share: float
    words_per_unit: float
    context_tokens_per_unit: float
    context_chars_per_unit: float
    questions_available: int
    pool_size: int
    search: str
    pool_encode_s: float
    #: Retrieval: the search alone, per query (the encoding is the rest of the unit).
    search_s_per_unit: float
    #: The median call over its units, and units served per second of timed calls.
    ms_per_unit_p50: float
    units_per_s: float
    #: The backend's task answers against eager float32's on the case's own inputs.
    agreement: float
    agreement_what: str


class Workload(TypedDict, total=False):
    """What one call computes (:mod:`harness.execution.runner`, :mod:`harness.inputs.textload`)."""

    kind: str
    n_batches: int
    pad_share: float
    sequences_per_call: float
    positions_per_call: float
    real_tokens_per_call: float
    batch_shapes: list[list[int]]
    repeat: int
    language: str | None
    policy: str | None
    sentences_available: int
    truncated_share: float
    tokens_per_sentence_mean: float
    real_tokens_by_batch: list[int]
    padded_len_by_batch: list[int]
    buckets: list[Bucket]
    ceiling: Ceiling
    interleaved: Interleaved
    task: TaskFacts
    #: Processes whose samples a merged record pools (:func:`harness.comparison.decide`).
    processes: int
    # serve-bench's traffic (:meth:`harness.serving.traffic.Traffic.facts`)
    traffic: str
    shares: dict[str, float]
    queries_in_pool: int
    tokens_mean: float
    tokens_p50: float
    tokens_p90: float
    tokens_max: int


class Roofline(TypedDict, total=False):
    """:meth:`harness.measure.roofline.Roofline.to_dict`."""

    flops: float
    achieved_tflops: float
    peak_tflops: float | None
    share_of_peak: float | None
    weight_bytes: int
    weight_floor_s: float | None
    over_floor: float | None
    peak_source: str


class LayerGemms(TypedDict, total=False):
    tokens: int
    gflops: float


class CpuPeak(TypedDict, total=False):
    """This CPU's GEMM ceiling with the backend's own kernels in the precision the case ran
    (:mod:`harness.measure.cpu_peak`); ``layer_gemms``: the same kernels at the case's own
    linear-layer shapes (synthetic cases)."""

    library: str
    precision: str
    gflops: float
    gemm: str
    layer_gemms: LayerGemms


class Compute(TypedDict, total=False):
    """FLOPs and achieved rate on every device; the roofline on a GPU
    (:func:`harness.execution.recording.compute_facts`)."""

    flops_per_call: float
    achieved_tflops: float
    formula: str
    roofline_at_p50: Roofline
    share_of_measured_matmul_peak: float
    #: CPU: this CPU's GEMM ceiling for the case's precision with the backend's own kernels
    #: (:mod:`harness.measure.cpu_peak`), and the share of it the case reached at its p50.
    cpu_peak: CpuPeak
    achieved_gflops_at_p50: float
    share_of_cpu_peak: float


class Energy(TypedDict, total=False):
    method: str
    joules: float
    seconds: float


class KindTime(TypedDict):
    kernels: int
    device_time_s: float


class KernelName(TypedDict):
    name: str
    kind: str
    calls: int
    device_time_s: float


class Kernels(TypedDict, total=False):
    """One profiled call (:func:`harness.measure.gpu.count_kernels`, :mod:`harness.measure.kernels`)."""

    per_call: int
    device_time_s: float
    method: str
    by_kind: dict[str, KindTime]
    top: list[KernelName]
    kinds_from: str


class GpuFacts(TypedDict, total=False):
    """Device memory, NVML, energy and kernels of a GPU case (:class:`harness.measure.gpu.GpuCaseProbe`)."""

    max_allocated_bytes: int
    max_reserved_bytes: int
    resident_before_bytes: int
    activation_bytes: int
    device_used_bytes: int | None
    energy: Energy
    joules_per_1k_sequences: float
    kernels: Kernels


def statistic(summary: Summary, name: str) -> float:
    """A summary statistic named at run time (``p50``, ``p90``, ``mean`` …)."""
    value = dict(summary).get(name)
    if not isinstance(value, int | float):
        raise KeyError(name)
    return float(value)


#: A JSON scalar: what open-ended facts (environment, LoadGen's settings) hold.
JsonScalar = str | int | float | bool | None


class Calibration(TypedDict, total=False):
    """The machine speed probe timed before a CPU case (:mod:`harness.measure.calibrate`)."""

    matmul_s: float
    python_s: float
    workload: str


class TokenizerInfo(TypedDict, total=False):
    """Which tokenizer made the token ids (:mod:`harness.inputs.tokenization`)."""

    kind: str
    name: str
    sha256: str
    vocab_size: int
    note: str
    trained_on: str


class HostInfo(TypedDict, total=False):
    """Where a Ray-executed case ran (:mod:`harness.execution.ray_executor`)."""

    executor: str
    hostname: str
    node_id: str | None
    pid: int
    hardware: str
    env: dict[str, JsonScalar]


class ArchInfo(TypedDict, total=False):
    layers: int
    hidden: int
    ffn: int
    heads: int
    vocab: int
    max_positions: int
    type_vocab: int


class WeightsInfo(TypedDict, total=False):
    """:class:`harness.checkpoints.weights.WeightStats`."""

    sha256: str
    n_params: int
    param_bytes: int
    dtypes: list[str]
    zero_share: float
    subnormal_share: float


class OnnxExportInfo(TypedDict, total=False):
    directory: str
    inputs: dict[str, int]
    outputs: list[str]
    head: str


class CheckpointInfo(TypedDict, total=False):
    """:meth:`harness.checkpoints.load.Checkpoint.describe`."""

    name: str
    source: str
    head: str
    path: str | None
    arch: ArchInfo
    weights: WeightsInfo
    onnx_export: OnnxExportInfo
    reference: str | None


class ModelSpecInfo(TypedDict, total=False):
    """:class:`harness.spec.config.ModelSpec` as written."""

    name: str
    source: str
    head: str
    seed: int
    arch: ArchInfo
    num_labels: int
    num_choices: int
    revision: str | None
    description: str
    reference: str | None


class MeasureInfo(TypedDict, total=False):
    warmup_iters: int
    min_iters: int
    max_iters: int
    target_rel_ci: float
    max_time_s: float


class TaskSettingsInfo(TypedDict, total=False):
    """:class:`harness.spec.tasks.TaskSettings` as written."""

    qa_max_len: int
    doc_stride: int
    max_query_len: int
    qa_context_chars: int
    max_answer_len: int
    retrieval_pool: int


class CaseInfo(TypedDict, total=False):
    """:class:`harness.spec.sweep.Case` as written: what was asked for."""

    model: ModelSpecInfo
    backend: str
    batch_size: int
    seq_len: int
    device: str
    dtype: str
    threads: int
    language: str | None
    policy: str | None
    lang_batches: int
    options: list[list[str]]
    measure: MeasureInfo
    task: str | None
    task_settings: TaskSettingsInfo


class Quantization(TypedDict, total=False):
    method: str
    weights: str
    activations: str
    per_channel: bool
    peak_rss_bytes: int | None
    ran: str


class OfflineRewrite(TypedDict, total=False):
    tool: str
    opt_level: int  # records before 2026-11-26 (now part of ``tool``)
    peak_rss_bytes: int | None
    ran: str
    fp16_initializers: int


class CalibrationInfo(TypedDict, total=False):
    """Static int8: what it was calibrated on (the served languages' accuracy is in each
    case's real-text check)."""

    method: str
    languages: list[str]
    sentences: int
    by_language: dict[str, int]
    split: str
    sha256: str
    tokenizer: str


class BackendInfo(TypedDict, total=False):
    """What a backend did to get ready (each backend's ``prepare``) and the device facts the
    runner adds. Keys a backend does not use are absent."""

    # torch backends
    fuse_qkv: bool
    attn_implementation: str | None
    torch_threads: int
    pack: bool
    packing: str
    mode: str
    dynamic: bool
    compile: str
    example_shape: list[int]
    cpu_isa: list[str]
    native_reduced_precision: bool
    allow_tf32: bool
    float32_matmul_precision: str
    gpu_name: str | None
    measured_matmul_tflops: float
    # ONNX Runtime backends
    exported_module: str
    exporter: str
    exporter_fallback: str
    export_key: str
    opset: int
    exported: bool
    optimizer: OfflineRewrite
    fusions: dict[str, int]
    quantization: Quantization
    fp16: OfflineRewrite
    io_binding: bool
    provider: str
    graph_optimization_level: str
    intra_op_num_threads: int
    inter_op_num_threads: int
    #: ORT's thread pools after a run: "stop" (session.force_spinning_stop), "on", "off".
    spinning: str
    execution_mode: str
    onnx_bytes: int
    # OpenVINO backends
    openvino: str
    inference_precision: str
    precision_hint: str
    num_threads: int
    ir_key: str
    converted: bool
    calibration: CalibrationInfo
    # every CPU group: this CPU's GEMM ceiling for the case's precision (or why not)
    cpu_peak: CpuPeak
    cpu_peak_error: str
    # cuda-graph-buckets
    buckets: list[str]
    bucket_capture_s: dict[str, float]
    capture_s_total: float


class ScenarioRun(TypedDict, total=False):
    """One LoadGen scenario run (:class:`harness.serving.loadgen.ScenarioResult`)."""

    scenario: str
    target_qps: float
    valid: bool
    invalid_reason: str
    perf_constraints_met: bool
    early_stopping_met: bool | None
    query_count: int
    overlatency_count: int
    completed_qps: float
    scheduled_qps: float
    latency_s: dict[str, float]
    batch_sizes: dict[str, int]
    busy_share: float
    duration_s: float
    error: str
    settings: dict[str, JsonScalar]
    mean_batch: float
    #: Queries answered unserved because the queue was full (overload), its peak depth.
    shed: int
    max_queue_depth: int
    #: Set when an early-stopping-only failure was rerun with more queries.
    confirmed: bool
    rerun: bool


class BatchingInfo(TypedDict, total=False):
    max_batch: int
    max_delay_s: float
    policy: str
    edges: list[int]
    max_queue: int


class ServingEnergy(TypedDict, total=False):
    method: str
    joules: float | None
    seconds: float
    queries: int


class Scenario(TypedDict, total=False):
    """A ``serve-bench`` capacity search (:mod:`harness.serving.bench`)."""

    kind: str
    loadgen_version: str | None
    bound_s: float
    percentile: float
    batching: BatchingInfo
    traffic: Workload
    single_stream: ScenarioRun
    offline: ScenarioRun
    probes: list[ScenarioRun]
    capacity_qps: float
    fail_qps: float
    resolution: float
    search_stop: str
    price_per_hour: float
    cost_per_million: float
    energy_per_request_j: float
    energy: ServingEnergy
    #: ``cuda-graph-buckets``: positions computed, and the padding share in all and beyond
    #: each batch's own.
    graph_buckets: dict[str, float]


def case_options(case: CaseInfo) -> dict[str, str]:
    """A case's backend options as ``{key: value}`` (written as ``[[key, value], …]``)."""
    return {str(k): str(v) for k, v in case.get("options", [])}
