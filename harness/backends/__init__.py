"""Backends by name. An explicit registry: no string-to-class magic, no subclass scanning."""

from __future__ import annotations

from harness.backends.base import Backend, BackendContext
from harness.backends.compiled import CompileBackend
from harness.backends.cudagraph import CudaGraphBackend
from harness.backends.eager import EagerBackend
from harness.backends.graph_buckets import CudaGraphBucketsBackend
from harness.backends.onnxruntime import (
    OnnxRuntimeBackend,
    OnnxRuntimeFusedBackend,
    OnnxRuntimeInt8Backend,
    OnnxRuntimeInt8StaticBackend,
)
from harness.backends.openvino import OpenVinoBackend, OpenVinoInt8Backend
from harness.backends.torchscript import TorchScriptBackend
from harness.errors import HarnessError

__all__ = ["BACKENDS", "Backend", "BackendContext", "check_backend", "make_backend"]

BACKENDS: dict[str, type[Backend]] = {
    "eager": EagerBackend,
    "torchscript": TorchScriptBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "onnxruntime-fused": OnnxRuntimeFusedBackend,
    "onnxruntime-int8": OnnxRuntimeInt8Backend,
    "onnxruntime-int8-static": OnnxRuntimeInt8StaticBackend,
    "compile": CompileBackend,
    "cuda-graph": CudaGraphBackend,
    "cuda-graph-buckets": CudaGraphBucketsBackend,
    "openvino": OpenVinoBackend,
    "openvino-int8": OpenVinoInt8Backend,
}


def check_backend(name: str, device: str) -> type[Backend]:
    """The backend class, or one clear error: unknown, wrong device, or not installed here."""
    cls = BACKENDS.get(name)
    if cls is None:
        raise HarnessError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    if device not in cls.devices:
        raise HarnessError(f"backend {name!r} does not run on {device}")
    reason = cls.unavailable(device)
    if reason:
        raise HarnessError(f"backend {name!r} is unavailable on {device}: {reason}")
    return cls


def make_backend(name: str, ctx: BackendContext) -> Backend:
    return check_backend(name, ctx.device)(ctx)  # type: ignore[call-arg]
