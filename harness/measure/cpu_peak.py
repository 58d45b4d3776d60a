"""This CPU's own limit: the GEMM rate of the kernels a backend itself uses, per precision.

A case's achieved GFLOP/s means little without the machine's ceiling, and the ceiling depends
on whose kernels run: torch's fp32 GEMM and ONNX Runtime's (MLAS) differ by 1.8x on the same
cores, and a bf16 or int8 GEMM is another machine again. So once a group is prepared the
harness times one square GEMM (``SIZE``, large enough to reach the kernels' plateau on a few
cores) in the precision the case computes in, with the backend's own library — torch for the
torch backends, ONNX Runtime's MatMul / MatMulInteger for ORT, OpenVINO's compiled MatMul
with the precision it runs — on the case's thread count, and records the best call.

Where a case falls short of that ceiling, a second number says why: the same kernels running
one layer's linear layers at the case's own shape (``layer_gemms``) — the loss to short GEMMs
— and the rest, between that and the case's achieved rate: attention, norms, GELU, the
runtime's own work.

Both are timed in a child process (``python -m harness.measure.cpu_peak``, :func:`ceiling`):
the matrices, arenas and threads they need never stay in the process that measures the cases,
so memory figures and the next case see nothing of them.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

__all__ = ["LAYER_TOKENS_MAX", "SIZE", "ceiling", "gemm_peak", "layer_gemms", "peak_precision"]

SIZE = 2048
#: Layers of more rows than this are not timed bare: their GEMMs are larger than the
#: ceiling's own, so the shape does not hold them back.
LAYER_TOKENS_MAX = 4096
_MIN_REPEATS = 5
#: Short calls are repeated until this much time is spent (the best of many is stable where
#: the best of five microsecond calls is not).
_BUDGET_S = 0.3
_CHILD_TIMEOUT_S = 300


def _best(fn: Callable[[], object]) -> float:
    fn()  # first call: allocation, packing, JIT
    best = float("inf")
    spent, n = 0.0, 0
    while n < _MIN_REPEATS or (spent < _BUDGET_S and n < 1000):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent, n = min(best, took), spent + took, n + 1
    return best


def _torch(precision: str, threads: int, m: int, k: int, n: int) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    return _best(lambda: torch.mm(a, b))


def _ort(precision: str, threads: int, m: int, k: int, n: int) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x: np.ndarray
    weight: np.ndarray
    if precision == "int8":
        # As dynamic and static int8 run it: uint8 activations times int8 weights.
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, out_type = TensorProto.UINT8, TensorProto.INT32
        x = rng.integers(0, 255, (m, k), dtype=np.uint8)
        weight = rng.integers(-127, 127, (k, n), dtype=np.int8)
    else:
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, out_type = TensorProto.FLOAT, TensorProto.FLOAT
        x = rng.standard_normal((m, k), dtype=np.float32)
        weight = rng.standard_normal((k, n), dtype=np.float32)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("y", out_type, [m, n])],
        initializer=[numpy_helper.from_array(weight, "b")],  # a weight, as in the model
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return _best(lambda: session.run(None, {"a": x}))


def _openvino(precision: str, threads: int, m: int, k: int, n: int) -> float:
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([m, k], np.float32, name="a")
    b = ops.constant(rng.standard_normal((k, n), dtype=np.float32))
    model = ov.Model([ops.matmul(a, b, False, False)], [a], "gemm")
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]
    compiled = ov.Core().compile_model(
        model,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": 1},
    )
    request = compiled.create_infer_request()
    x = rng.standard_normal((m, k), dtype=np.float32)
    return _best(lambda: request.infer({0: x}, share_inputs=True))


_LIBRARIES: dict[str, Callable[[str, int, int, int, int], float]] = {
    "torch": _torch,
    "onnxruntime": _ort,
    "openvino": _openvino,
}


@functools.cache
def gemm_peak(library: str, precision: str, threads: int) -> float:
    """GFLOP/s (GOP/s for int8) of one ``SIZE``³ GEMM with ``library``'s kernels: the ceiling."""
    seconds = _LIBRARIES[library](precision, threads, SIZE, SIZE, SIZE)
    return 2 * SIZE**3 / seconds / 1e9


def _layer_torch(precision: str, threads: int, shapes: list[tuple[int, int, int]]) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    pairs = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)) for m, k, n in shapes]
    return _best(lambda: [torch.mm(a, b) for a, b in pairs])


def _layer_ort(precision: str, threads: int, shapes: list[tuple[int, int, int]]) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    int8 = precision == "int8"
    nodes, inputs, outputs, weights = [], [], [], []
    feed: dict[str, np.ndarray] = {}
    for i, (m, k, n) in enumerate(shapes):
        w: np.ndarray
        op = "MatMulInteger" if int8 else "MatMul"
        nodes.append(helper.make_node(op, [f"a{i}", f"b{i}"], [f"y{i}"]))
        a_type = TensorProto.UINT8 if int8 else TensorProto.FLOAT
        inputs.append(helper.make_tensor_value_info(f"a{i}", a_type, [m, k]))
        out_type = TensorProto.INT32 if int8 else TensorProto.FLOAT
        outputs.append(helper.make_tensor_value_info(f"y{i}", out_type, [m, n]))
        if int8:
            feed[f"a{i}"] = rng.integers(0, 255, (m, k), dtype=np.uint8)
            w = rng.integers(-127, 127, (k, n), dtype=np.int8)
        else:
            feed[f"a{i}"] = rng.standard_normal((m, k), dtype=np.float32)
            w = rng.standard_normal((k, n), dtype=np.float32)
        weights.append(numpy_helper.from_array(w, f"b{i}"))
    graph = helper.make_graph(nodes, "layer", inputs, outputs, initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return _best(lambda: session.run(None, feed))


def _layer_openvino(precision: str, threads: int, shapes: list[tuple[int, int, int]]) -> float:
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    params, outs, feed = [], [], {}
    for i, (m, k, n) in enumerate(shapes):
        a = ops.parameter([m, k], np.float32, name=f"a{i}")
        b = ops.constant(rng.standard_normal((k, n), dtype=np.float32))
        params.append(a)
        outs.append(ops.matmul(a, b, False, False))
        feed[i] = rng.standard_normal((m, k), dtype=np.float32)
    model = ov.Model(outs, params, "layer")
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]
    compiled = ov.Core().compile_model(
        model,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": 1},
    )
    request = compiled.create_infer_request()
    return _best(lambda: request.infer(feed, share_inputs=True))


_LAYERS: dict[str, Callable[[str, int, list[tuple[int, int, int]]], float]] = {
    "torch": _layer_torch,
    "onnxruntime": _layer_ort,
    "openvino": _layer_openvino,
}


@functools.cache
def layer_gemms(
    library: str, precision: str, threads: int, tokens: int, hidden: int, ffn: int
) -> float:
    """GFLOP/s of one encoder layer's linear layers as bare GEMMs at the case's own shape —
    four ``tokens×hidden×hidden`` (Q, K, V, output), ``tokens×hidden×ffn`` and
    ``tokens×ffn×hidden`` — run as one call with ``library``'s kernels (one graph for ORT and
    OpenVINO, so a call's fixed cost is paid once, as in the model): what the GEMMs alone
    reach at this shape, before attention, norms, GELU and the rest of the runtime's work."""
    shapes = [(tokens, hidden, hidden)] * 4 + [(tokens, hidden, ffn), (tokens, ffn, hidden)]
    seconds = _LAYERS[library](precision, threads, shapes)
    return sum(2 * m * k * n for m, k, n in shapes) / seconds / 1e9


def peak_precision(backend: str, dtype: str, ran: str | None = None) -> tuple[str, str] | None:
    """(library, precision) whose GEMM is the ceiling of a CPU case, or None when the harness
    has no such kernel to time. OpenVINO offers no bare int8 GEMM to call, so ONNX Runtime's
    u8 x s8 GEMM on the same CPU stands in for ``openvino-int8`` (the record names the
    library, and the report marks it as another library's)."""
    if backend in ("eager", "torchscript", "compile"):
        return "torch", {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(
            dtype, "fp32"
        )
    if backend.startswith("onnxruntime"):
        return "onnxruntime", "int8" if "int8" in backend else "fp32"
    if backend == "openvino-int8":
        return "onnxruntime", "int8"
    if backend == "openvino":
        return "openvino", {"bf16": "bf16", "f16": "fp16"}.get(ran or "", "fp32")
    return None


@functools.cache
def ceiling(
    library: str, precision: str, threads: int, hidden: int, ffn: int, tokens: tuple[int, ...]
) -> dict[str, object]:
    """The ceiling GEMM's GFLOP/s and, per row count in ``tokens`` (up to
    ``LAYER_TOKENS_MAX``), one layer's bare GEMMs' — timed in a child process; once per
    argument set in a process. ``{"error": ...}`` when the child fails (the case goes on)."""
    shapes = [t for t in tokens if t <= LAYER_TOKENS_MAX]
    argv = [sys.executable, "-m", "harness.measure.cpu_peak", library, precision, str(threads)]
    argv += [str(hidden), str(ffn), *map(str, shapes)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_CHILD_TIMEOUT_S, env=os.environ.copy()
        )
    except subprocess.TimeoutExpired:
        return {"error": f"the GEMM timing took over {_CHILD_TIMEOUT_S} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the GEMM timing failed: {last[:200]}"}
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str]) -> int:
    """``LIBRARY PRECISION THREADS HIDDEN FFN [TOKENS...]`` → one JSON line on stdout:
    ``{"gflops": ..., "size": N, "layers": {"TOKENS": gflops, ...}}``. The ceiling GEMM is
    ``SIZE``³ unless ``$HARNESS_CPU_PEAK_SIZE`` says otherwise."""
    global SIZE
    library, precision, threads, hidden, ffn, *tokens = argv
    SIZE = int(os.environ.get("HARNESS_CPU_PEAK_SIZE", SIZE))
    peak = gemm_peak(library, precision, int(threads))
    layers = {
        t: layer_gemms(library, precision, int(threads), int(t), int(hidden), int(ffn))
        for t in tokens
    }
    print(json.dumps({"gflops": peak, "size": SIZE, "layers": layers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
