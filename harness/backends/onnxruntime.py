"""ONNX Runtime: export once per (weights, settings), then an ``InferenceSession``.

Two named variants, so a report never mixes them up:

* ``onnxruntime`` — the exported graph with ORT's own graph optimizations (``ORT_ENABLE_ALL``).
* ``onnxruntime-fused`` — the graph first passed through ORT's transformer optimizer
  (Attention / SkipLayerNormalization / BiasGelu fusions). The fusion counts are recorded:
  an optimizer that silently fuses nothing (as it does on transformers-5 exports of XLM-R)
  shows up as ``Attention: 0`` in the record, not as a mysteriously slow backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..env import cpu_isa
from ..errors import HarnessError
from ..onnx_export_dir import OnnxExport, inspect_export, serving_output
from .base import BackendContext, validate_options

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..workloads import Batch

OPSET = 17
#: The dynamo exporter's lowest supported opset (onnxscript's translations target 18).
DYNAMO_OPSET = 18
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _quantize(plain: Path, per_channel: bool, big: str) -> tuple[Path, dict[str, Any]]:
    """Dynamic int8 quantization of the weights (activations quantized per call), cached."""
    target = plain.with_name(f"model-int8{'-pc' if per_channel else ''}.onnx")
    facts = _offline(
        target.with_suffix(".json"),
        target,
        ["quantize", str(plain), str(target), "true" if per_channel else "false", big],
    )
    info = {
        "quantization": {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "weights": "int8 (QInt8)",
            "activations": "uint8, quantized per call",
            "per_channel": per_channel,
            "peak_rss_bytes": facts.get("peak_rss_bytes"),
            "ran": "in a child process",
        },
        "cpu_isa": cpu_isa(),
    }
    return target, info


EXPORTERS = ("auto", "dynamo", "legacy", "optimum")


def _onnxscript_version() -> str | None:
    try:
        import onnxscript
    except ImportError:
        return None
    return str(onnxscript.__version__)


def resolve_exporter(requested: str) -> str:
    """``auto`` is the legacy exporter, with the dynamo one as the fallback when the legacy
    export fails (or torch no longer ships it). Measured on an Intel Xeon VM (xlmr-base, batch
    1 × 128, README): ORT runs the dynamo graph 7 % slower in fp32 and 18 % slower after int8
    quantization, and ORT's transformer optimizer fuses attention only in the legacy graph."""
    return "legacy" if requested == "auto" else requested


def _export_legacy(model: torch.nn.Module, example: Batch, target: Path) -> None:
    rank = example.input_ids.dim()
    axes = {i: f"d{i}" for i in range(rank)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example.input_ids, example.attention_mask),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["output"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "output": {0: "batch", 1: "o1", 2: "o2"},
            },
        )


def _export_dynamo(model: torch.nn.Module, example: Batch, target: Path, big: bool) -> None:
    import io
    import logging

    auto = torch.export.Dim.AUTO
    dims = dict.fromkeys(range(example.input_ids.dim()), auto)
    # torch.onnx logs a warning per operator it cannot register (torchvision's): noise.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    # The exporter reports its progress on stdout; measurement code never prints.
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example.input_ids, example.attention_mask),
            str(target),
            dynamo=True,
            opset_version=DYNAMO_OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["output"],
            dynamic_shapes=(dims, dims),
            external_data=big,
            verbose=False,
        )


def _export(
    ckpt: Checkpoint,
    example: Batch,
    cache_dir: Path,
    fused: bool,
    requested: str = "auto",
    gpu: bool = False,
) -> tuple[Path, dict[str, Any], OnnxExport | None]:
    """Export (or reuse) the ONNX graph; returns its path, what was done, and — for a graph
    with transformers' outputs (a given ``optimum-cli`` export, or ``exporter=optimum``) —
    what it takes and returns, so the backend serves the head's output from it."""
    exporter = resolve_exporter(requested)
    info: dict[str, Any] = {
        "exported_module": "harness.fused.ExportModel (BERT's classic attention graph)",
    }
    given = ckpt.onnx
    if given is not None:
        plain = _stage_given(ckpt, cache_dir)
        exporter = "legacy"  # ORT's own optimizer fuses a given graph (see below)
        info = {"exporter": f"given: {given.directory}", "export_key": plain.parent.name}
    elif requested == "optimum":
        plain, info = _export_optimum(ckpt, cache_dir)
        given = inspect_export(plain.parent)
        exporter = "legacy"
    else:
        try:
            plain, facts = _export_cached(ckpt, example, cache_dir, exporter)
        except Exception as exc:
            if requested != "auto" or _onnxscript_version() is None:
                raise HarnessError(f"the {exporter} ONNX export failed: {exc}") from exc
            # ``auto`` falls back to the other exporter, and says why in the record.
            other = "dynamo" if exporter == "legacy" else "legacy"
            reason = f"{exporter} failed ({type(exc).__name__}: {str(exc)[:160]})"
            info["exporter_fallback"] = reason
            exporter = other
            plain, facts = _export_cached(ckpt, example, cache_dir, exporter)
        info |= facts
    if not fused:
        return plain, info, given
    folder = plain.parent
    if exporter == "legacy":
        target = folder / f"model-fused-o0{'-gpu' if gpu else ''}.onnx"
        heads, hidden = str(ckpt.arch.heads), str(ckpt.arch.hidden)
        args = ["optimize", str(plain), str(target), heads, hidden, _big(ckpt)]
        args.append("true" if gpu else "false")
        tool = f"onnxruntime.transformers.optimizer (opt_level 0, use_gpu={gpu})"
    else:
        target = folder / "model-fused-onnxscript.onnx"
        args = ["fuse-onnxscript", str(plain), str(target), _big(ckpt)]
        tool = f"onnxscript.rewriter.ort_fusions {_onnxscript_version()}"
    offline = _offline(target.with_suffix(".json"), target, args)
    info["optimizer"] = {
        "tool": tool,
        "peak_rss_bytes": offline.get("peak_rss_bytes"),
        "ran": "in a child process",
    }
    info["fusions"] = offline.get("fusions", {})
    return target, info, given


#: optimum's task for each serving head.
OPTIMUM_TASKS = {
    "encoder": "feature-extraction",
    "sequence-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "multiple-choice": "multiple-choice",
}


def _optimum_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("optimum-onnx")
    except Exception:
        return None


def _export_optimum(ckpt: Checkpoint, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """optimum's ONNX exporter on the checkpoint's own files (what ``optimum-cli export
    onnx`` does), cached like the other exports; its validation is skipped because the
    runner's parity check against eager is the one every backend passes."""
    import io
    import logging

    where = str(ckpt.path) if ckpt.path else ckpt.spec.source
    task = OPTIMUM_TASKS[ckpt.spec.head]
    settings = f"optimum-{_optimum_version()}-{task}-torch{torch.__version__}"
    key = hashlib.sha256(f"{ckpt.weights.sha256}:{settings}".encode()).hexdigest()[:20]
    folder = cache_dir / "onnx" / key
    plain = folder / "model.onnx"
    info: dict[str, Any] = {
        "exporter": f"optimum-onnx {_optimum_version()} (task {task})",
        "export_key": key,
    }
    if plain.is_file():
        return plain, info | {"exported": False}
    from optimum.exporters.onnx import main_export

    logging.getLogger("optimum").setLevel(logging.ERROR)
    with staged(folder) as staging, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            main_export(where, output=staging, task=task, do_validation=False)
    return plain, info | {"exported": True}


@contextlib.contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A fresh directory beside ``folder``, renamed to it when the block completes: a large
    export writes its weights beside the graph, and a half-written pair must never be found
    in the cache. When another worker finished the same folder first, its copy stands."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        yield staging
        try:
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _export_cached(
    ckpt: Checkpoint, example: Batch, cache_dir: Path, exporter: str
) -> tuple[Path, dict[str, Any]]:
    opset = OPSET if exporter == "legacy" else DYNAMO_OPSET
    settings = f"opset{opset}-{exporter}-classic-torch{torch.__version__}-{ckpt.spec.head}"
    key = hashlib.sha256(f"{ckpt.weights.sha256}:{settings}".encode()).hexdigest()[:20]
    folder = cache_dir / "onnx" / key
    plain = folder / "model.onnx"
    facts: dict[str, Any] = {
        "export_key": key,
        "opset": opset,
        "exporter": "torch.onnx (legacy, TorchScript-based)"
        if exporter == "legacy"
        else f"torch.onnx (dynamo, onnxscript {_onnxscript_version()})",
    }
    if plain.is_file():
        return plain, facts | {"exported": False}
    from ..fused import ExportModel

    model = ExportModel(ckpt.torch_model().float().cpu()).eval()
    with staged(folder) as staging:
        if exporter == "legacy":
            _export_legacy(model, example, staging / "model.onnx")
        else:
            _export_dynamo(model, example, staging / "model.onnx", _big(ckpt) == "true")
    return plain, facts | {"exported": True}


def _stage_given(ckpt: Checkpoint, cache_dir: Path) -> Path:
    """A given export's files linked (or copied) into the cache, so the optimized and
    quantized variants are written there, never into the user's directory."""
    assert ckpt.onnx is not None
    source = ckpt.onnx.model_file
    folder = cache_dir / "onnx" / f"given-{ckpt.weights.sha256[:20]}"
    target = folder / "model.onnx"
    if target.is_file():
        return target
    with staged(folder) as staging:
        for file in source.parent.iterdir():  # the graph and its external data files
            if file.is_file() and file.name.startswith(source.name):
                try:
                    os.link(file, staging / file.name)
                except OSError:
                    shutil.copy2(file, staging / file.name)
    return target


def _half(path: Path, big: str) -> tuple[Path, dict[str, Any]]:
    """The graph in float16 (ORT's converter, inputs and outputs kept), cached beside it."""
    target = path.with_name(path.stem + "-fp16.onnx")
    facts = _offline(target.with_suffix(".json"), target, ["fp16", str(path), str(target), big])
    return target, {"fp16": facts.get("fp16", {}) | {"peak_rss_bytes": facts.get("peak_rss_bytes")}}


def _big(ckpt: Checkpoint) -> str:
    """Beyond protobuf's 2 GB limit the weights go in a file beside the graph."""
    return "true" if ckpt.weights.param_bytes > 1_800_000_000 else "false"


def _offline(facts_file: Path, target: Path, args: list[str]) -> dict[str, Any]:
    """Run an offline rewrite once (cached with its facts: fusions, the child's peak RSS)."""
    import json

    from .ort_offline import run_offline

    if not (target.is_file() and facts_file.is_file()):
        tmp = target.with_name(target.stem + ".tmp.onnx")
        argv = [a if a != str(target) else str(tmp) for a in args]
        facts = run_offline(argv)
        os.replace(tmp, target)
        facts_file.write_text(json.dumps(facts))
    data: dict[str, Any] = json.loads(facts_file.read_text())
    return data


class OnnxRuntimeBackend:
    name: ClassVar[str] = "onnxruntime"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: The export is float32; int8 is a rewrite of it (chosen by the backend, not the dtype),
    #: float16 another (ORT's converter), for the CUDA execution provider only.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float16")
    fused: ClassVar[bool] = False
    int8: ClassVar[bool] = False
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
    }

    @classmethod
    def check_options(cls, options: dict[str, str]) -> None:
        validate_options(cls.name, options, cls.OPTIONS)
        if options.get("exporter") == "optimum" and _optimum_version() is None:
            raise HarnessError(
                f"{cls.name}: exporter=optimum needs optimum's ONNX exporter "
                "(pip install 'xlmr-harness[optimum]'; it needs transformers < 4.58)"
            )

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
        path, info, given = _export(ckpt, example, self.ctx.cache_dir, self.fused, requested, gpu)
        if self.int8:
            per_channel = self.ctx.option("per_channel", "false") == "true"
            path, extra = _quantize(path, per_channel, _big(ckpt))
            info |= extra
        if self.ctx.dtype == "float16":
            path, extra = _half(path, _big(ckpt))
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
