"""Offline ONNX graph rewrites (transformer optimizer, dynamic int8), each in a fresh process.

Both load the whole graph, run shape inference and serialize it again: several copies of the
weights at once. Done inside the measuring worker, the freed memory stays in the worker's
allocator and inflates every resident figure it records afterwards (7 GB resident to serve
XLM-R base's 1.1 GB fused graph). In a child process it is returned to the system when the
child exits, and the child reports its own peak, which is recorded as a cost of its own.

    python -m harness.backends.ort_offline optimize PLAIN TARGET HEADS HIDDEN BIG [GPU]
    python -m harness.backends.ort_offline quantize PLAIN TARGET PER_CHANNEL BIG
    python -m harness.backends.ort_offline quantize-static PLAIN TARGET CALIBRATION.npz PER_CHANNEL BIG
    python -m harness.backends.ort_offline fuse-onnxscript PLAIN TARGET BIG
    python -m harness.backends.ort_offline fp16 PLAIN TARGET BIG

``BIG`` (``true``/``false``): write the weights beside the graph (external data), which
protobuf's 2 GB limit requires for XLM-R large in float32.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["run_offline"]


def _optimize(
    plain: str, target: str, heads: int, hidden: int, big: bool, gpu: bool = False
) -> dict[str, Any]:
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level=0: the Python fusions only. The default for BERT first builds a full ONNX
    # Runtime session to pre-optimise the graph, holding more copies of the weights; the
    # session that is timed applies ORT's own graph optimizations afterwards anyway.
    # use_gpu: the fusions meant for the CUDA execution provider (its Attention kernels).
    opt = optimize_model(
        plain, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, use_gpu=gpu
    )
    stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(target, use_external_data_format=big)
    return {"fusions": stats}


#: ONNX Runtime's fused operators, counted in a rewritten graph.
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)


def _fuse_onnxscript(plain: str, target: str, big: bool) -> dict[str, Any]:
    """onnxscript's ORT fusions: what recognizes a dynamo export's attention."""
    from collections import Counter

    import onnx_ir as ir
    from onnxscript.rewriter import ort_fusions

    model, _ = ort_fusions.optimize_for_ort(ir.load(plain))
    counts = Counter(node.op_type for node in model.graph.all_nodes())
    if big:
        ir.save(model, target, external_data=Path(target).name + ".data")
    else:
        ir.save(model, target)
    return {"fusions": {op: counts[op] for op in FUSED_OPS if counts[op]}}


def _quantize(plain: str, target: str, per_channel: bool, big: bool) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        plain,
        target,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        use_external_data_format=big,
    )
    return {}


def _quantize_static(
    plain: str, target: str, calibration: str, per_channel: bool, big: bool
) -> dict[str, Any]:
    """Static int8 (QDQ): activation ranges from calibration sentences (MinMax), the
    MatMuls' weights and inputs int8; the sentences come as an .npz of ``ids{i}``/``mask{i}``."""
    import numpy as np
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    data = np.load(calibration)
    n = sum(1 for k in data.files if k.startswith("ids"))
    items = [{"input_ids": data[f"ids{i}"], "attention_mask": data[f"mask{i}"]} for i in range(n)]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter(items)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.it, None)

    quantize_static(
        plain,
        target,
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=per_channel,
        calibrate_method=CalibrationMethod.MinMax,
        use_external_data_format=big,
    )
    return {}


def _fp16(plain: str, target: str, big: bool) -> dict[str, Any]:
    """Weights and compute in float16 by ORT's converter; inputs and outputs stay as they
    were (``keep_io_types``), so the same feeds and the same parity check apply."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(plain), keep_io_types=True)
    onnx.save(model, target, save_as_external_data=big, location=Path(target).name + ".data")
    halves = sum(1 for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
    return {"fp16": {"tool": "onnxruntime.transformers.float16", "fp16_initializers": halves}}


def _child_signals() -> None:
    """The rewrite stops with whoever started it: the default signal handlers back (a worker
    ignores SIGTERM and SIGINT, and a child inherits that), and death with its parent."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def run_offline(args: list[str]) -> dict[str, Any]:
    """Run one rewrite in a fresh interpreter; its result plus ``peak_rss_bytes``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.backends.ort_offline", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        preexec_fn=_child_signals,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise HarnessError(f"onnx {args[0]} failed in its child process: {tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    kind, plain, target, *rest = argv
    if kind == "optimize":
        gpu = len(rest) > 3 and rest[3] == "true"
        out = _optimize(plain, target, int(rest[0]), int(rest[1]), rest[2] == "true", gpu)
    elif kind == "fp16":
        out = _fp16(plain, target, rest[0] == "true")
    elif kind == "quantize":
        out = _quantize(plain, target, rest[0] == "true", rest[1] == "true")
    elif kind == "quantize-static":
        out = _quantize_static(plain, target, rest[0], rest[1] == "true", rest[2] == "true")
    elif kind == "fuse-onnxscript":
        out = _fuse_onnxscript(plain, target, rest[0] == "true")
    else:
        raise SystemExit(f"unknown rewrite {kind!r}")
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
