"""ONNX Runtime: a graph from :mod:`.onnx_graphs` (exported once per weights and settings,
or given), then an ``InferenceSession``.

Two named variants, so a report never mixes them up:

* ``onnxruntime`` — the exported graph with ORT's own graph optimizations (``ORT_ENABLE_ALL``).
* ``onnxruntime-fused`` — the graph first passed through ORT's transformer optimizer
  (Attention / SkipLayerNormalization / BiasGelu fusions). The fusion counts are recorded:
  an optimizer that silently fuses nothing (as it does on transformers-5 exports of XLM-R)
  shows up as ``Attention: 0`` in the record, not as a mysteriously slow backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.backends.base import BackendContext, validate_options
from harness.backends.onnx_graphs import (
    EXPORTERS,
    big_weights,
    export_graph,
    quantize_int8,
    quantize_static_int8,
    require_optimum,
    to_float16,
)
from harness.errors import HarnessError
from harness.spec.onnx_export import OnnxExport, serving_output

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
SPINNING = ("stop", "on", "off")


class OnnxRuntimeBackend:
    name: ClassVar[str] = "onnxruntime"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: The export is float32; int8 is a rewrite of it (chosen by the backend, not the dtype),
    #: float16 another (ORT's converter), for the CUDA execution provider only.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float16")
    fused: ClassVar[bool] = False
    int8: ClassVar[bool] = False
    #: Static int8: calibrates on sentences from the corpus (BackendContext.calibration).
    calibrated: ClassVar[bool] = False
    #: Runs a checkpoint that is an ONNX export already (torch backends need weights).
    takes_onnx_exports: ClassVar[bool] = True
    #: Exact backends must match eager within the dtype's tolerance; approximate ones
    #: (quantized) are judged by cosine similarity and top-1 agreement instead.
    approximate: ClassVar[bool] = False

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.session: Any = None
        #: A given (optimum-cli) export: its graph inputs and head, to adapt its outputs.
        self.given: OnnxExport | None = None
        self.io_binding = False

    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "graph_optimization_level": ("disable", "basic", "extended", "all"),
        "exporter": EXPORTERS,
        # Inputs copied into ORT values once per batch (on the device for CUDA), outputs
        # left where the provider wrote them: no host<->device copy inside the timed call.
        "io_binding": ("false", "true"),
        # What the intra-op threads do once a run returns: "stop" spinning at once (the
        # default: an idle session then takes no core from a neighbour, which interleaved
        # arms are), "on" (ORT's own default: spin a while, waiting for the next run), or
        # "off" (never spin, not even between a run's own operators).
        "spinning": SPINNING,
    }

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        validate_options(cls.name, options, cls.OPTIONS)
        if options.get("exporter") == "optimum":
            require_optimum(cls.name)

    @classmethod
    def dtypes_on(cls, device: str) -> tuple[str, ...]:
        """float16 graphs need the CUDA provider (ORT's CPU kernels are float32)."""
        return cls.dtypes if device == "cuda" else ("float32",)

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        if _PROVIDERS[device] not in ort.get_available_providers():
            return f"onnxruntime has no {_PROVIDERS[device]} (install onnxruntime-gpu)"
        return None

    def prepare(self, ckpt: Checkpoint, example: Batch) -> dict[str, Any]:
        import onnxruntime as ort

        if self.ctx.dtype not in self.dtypes_on(self.ctx.device):
            raise HarnessError(f"{self.name}: {self.ctx.dtype} is not run on {self.ctx.device}")
        requested = self.ctx.option("exporter", "auto")
        gpu = self.ctx.device == "cuda"
        path, info, given = export_graph(
            ckpt, example, self.ctx.cache_dir, self.fused, requested, gpu
        )
        if self.int8 and self.calibrated:
            path, extra = quantize_static_int8(
                path,
                self.ctx.calibration,
                self.ctx.calibration_facts,
                self.ctx.option("per_channel", "false") == "true",
                big_weights(ckpt),
            )
            info |= extra
        elif self.int8:
            per_channel = self.ctx.option("per_channel", "false") == "true"
            path, extra = quantize_int8(path, per_channel, big_weights(ckpt))
            info |= extra
        if self.ctx.dtype == "float16":
            path, extra = to_float16(path, big_weights(ckpt))
            info |= extra
        self.io_binding = self.ctx.option("io_binding", "false") == "true"
        if self.io_binding and given is not None:
            raise HarnessError(
                f"{self.name}: io_binding is for the harness's own exports (a given graph's "
                "outputs are pooled on the host)"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.ctx.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = self.ctx.option("graph_optimization_level", "all")
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        opts.log_severity_level = 3
        spinning = self.ctx.option("spinning", "stop")
        if spinning == "stop":
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        elif spinning == "off":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider = _PROVIDERS[self.ctx.device]
        self.session = ort.InferenceSession(str(path), opts, providers=[provider])
        self.given = given
        return info | {
            "io_binding": self.io_binding,
            "provider": provider,
            "graph_optimization_level": opts.graph_optimization_level.name,
            "intra_op_num_threads": self.ctx.threads,
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "spinning": spinning,
            "onnx_bytes": path.stat().st_size,
        }

    def bind(self, batch: Batch) -> Any:
        feed = {
            "input_ids": batch.input_ids.numpy(),
            "attention_mask": batch.attention_mask.numpy(),
        }
        if self.given is not None and "token_type_ids" in self.given.inputs:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        if self.io_binding:
            return self._bind_io(feed)
        return feed

    def _bind_io(self, feed: dict[str, np.ndarray]) -> Any:
        import onnxruntime as ort

        device = "cuda" if self.ctx.device == "cuda" else "cpu"
        binding = self.session.io_binding()
        values = {k: ort.OrtValue.ortvalue_from_numpy(v, device, 0) for k, v in feed.items()}
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("output", device)
        return (binding, values)  # the values must outlive the binding's use of them

    def run(self, bound: Any) -> Any:
        if self.io_binding:
            binding = bound[0]
            self.session.run_with_iobinding(binding)
            return binding
        if self.given is None:
            return self.session.run(None, bound)[0]
        # A given graph answers with transformers' outputs; pooling them is part of serving.
        outs = self.session.run(list(self.given.outputs), bound)
        named = dict(zip(self.given.outputs, outs, strict=True))
        return serving_output(self.given.head, named, bound["attention_mask"])

    def sync(self) -> None:
        return None  # session.run returns after the provider finished

    def output(self, result: Any) -> np.ndarray:
        if self.io_binding:
            result = result.copy_outputs_to_cpu()[0]
        return np.asarray(result, dtype=np.float32)

    def close(self) -> None:
        self.session = None


class OnnxRuntimeFusedBackend(OnnxRuntimeBackend):
    name: ClassVar[str] = "onnxruntime-fused"
    fused: ClassVar[bool] = True


class OnnxRuntimeInt8Backend(OnnxRuntimeBackend):
    """Dynamic int8 quantization of the exported graph: what serving on a CPU often uses.
    Its outputs are approximate, so its parity is accuracy (cosine, top-1), not a diff."""

    name: ClassVar[str] = "onnxruntime-int8"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    int8: ClassVar[bool] = True
    approximate: ClassVar[bool] = True
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = OnnxRuntimeBackend.OPTIONS | {
        "per_channel": ("false", "true"),
        "min_cosine": ("0.9", "0.95", "0.98", "0.99", "0.995", "0.999"),
    }


class OnnxRuntimeInt8StaticBackend(OnnxRuntimeInt8Backend):
    """Static int8 (QDQ): activation ranges calibrated once on real sentences —
    ``calibration_languages`` (``eng`` by default: English sentences from the corpus's train
    half) — instead of per call. The cross-lingual question on the quantization axis: a graph
    calibrated on English, served to Thai; each served language's accuracy is in its record."""

    name: ClassVar[str] = "onnxruntime-int8-static"
    calibrated: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        rest = {k: v for k, v in options.items() if k != "calibration_languages"}
        super().check_options(rest)
