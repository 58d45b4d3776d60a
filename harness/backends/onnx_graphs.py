"""The ONNX graphs the ONNX Runtime backends serve: exported from the checkpoint (torch.onnx's
legacy or dynamo exporter, or optimum's), or given (an ``optimum-cli`` directory), then
rewritten offline in a child process (ORT's transformer optimizer or onnxscript's fusions,
dynamic int8 quantization, float16). Every graph is cached under ``cache_dir/onnx`` by what it
depends on and built in a staged folder, so a half-written one is never found.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.cache import seal_entry, usable
from harness.errors import HarnessError
from harness.records.env import cpu_isa
from harness.spec.onnx_export import OnnxExport, inspect_export

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.inputs.workloads import Batch

__all__ = [
    "EXPORTERS",
    "big_weights",
    "export_graph",
    "optimum_version",
    "quantize_int8",
    "require_optimum",
    "resolve_exporter",
    "staged",
    "to_float16",
]

OPSET = 17
#: The dynamo exporter's lowest supported opset (onnxscript's translations target 18).
DYNAMO_OPSET = 18


def quantize_int8(plain: Path, per_channel: bool, big: str) -> tuple[Path, dict[str, Any]]:
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


def export_graph(
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
        "exported_module": "harness.backends.fused.ExportModel (BERT's classic attention graph)",
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
        args = ["optimize", str(plain), str(target), heads, hidden, big_weights(ckpt)]
        args.append("true" if gpu else "false")
        tool = f"onnxruntime.transformers.optimizer (opt_level 0, use_gpu={gpu})"
    else:
        target = folder / "model-fused-onnxscript.onnx"
        args = ["fuse-onnxscript", str(plain), str(target), big_weights(ckpt)]
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


def optimum_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("optimum-onnx")
    except Exception:
        return None


def require_optimum(backend: str) -> None:
    """Refuse ``exporter=optimum`` where optimum's exporter is not installed."""
    if optimum_version() is None:
        raise HarnessError(
            f"{backend}: exporter=optimum needs optimum's ONNX exporter "
            "(pip install 'xlmr-harness[optimum]'; it needs transformers < 4.58)"
        )


def _export_optimum(ckpt: Checkpoint, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """optimum's ONNX exporter on the checkpoint's own files (what ``optimum-cli export
    onnx`` does), cached like the other exports; its validation is skipped because the
    runner's parity check against eager is the one every backend passes."""
    import io
    import logging

    where = str(ckpt.path) if ckpt.path else ckpt.spec.source
    task = OPTIMUM_TASKS[ckpt.spec.head]
    version = optimum_version()
    folder = _export_folder(ckpt, cache_dir, f"optimum-{version}-{task}-torch{torch.__version__}")
    info: dict[str, Any] = {
        "exporter": f"optimum-onnx {version} (task {task})",
        "export_key": folder.name,
    }

    def build(staging: Path) -> None:
        from optimum.exporters.onnx import main_export

        logging.getLogger("optimum").setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            main_export(where, output=staging, task=task, do_validation=False)

    return _build_once(folder, info, build)


@contextlib.contextmanager
def staged(folder: Path, required: str = "model.onnx") -> Iterator[Path]:
    """A fresh directory beside ``folder``, renamed to it when the block completes: a large
    export writes its weights beside the graph, and a half-written pair must never be found
    in the cache. When another worker finished the same folder first (its ``required`` file
    is there), its copy stands."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        yield staging
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished it first: its copy stands, if whole
            if not (folder / required).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _export_folder(ckpt: Checkpoint, cache_dir: Path, settings: str) -> Path:
    """The cache folder of one export: keyed by the weights and everything else it depends on."""
    key = hashlib.sha256(f"{ckpt.weights.sha256}:{settings}".encode()).hexdigest()[:20]
    return cache_dir / "onnx" / key


def _build_once(
    folder: Path, facts: dict[str, Any], build: Callable[[Path], None]
) -> tuple[Path, dict[str, Any]]:
    """``folder/model.onnx``, built into a staged folder by ``build`` unless cached; the facts
    say which."""
    plain = folder / "model.onnx"
    own = list(folder.glob("model.onnx*")) if folder.is_dir() else []  # the graph, its weights
    if usable(folder, [plain], "ONNX export", files=[f for f in own if ".manifest" not in f.name]):
        return plain, facts | {"exported": False}
    with staged(folder) as staging:
        build(staging)
        seal_entry(staging)
    return plain, facts | {"exported": True}


def _export_cached(
    ckpt: Checkpoint, example: Batch, cache_dir: Path, exporter: str
) -> tuple[Path, dict[str, Any]]:
    opset = OPSET if exporter == "legacy" else DYNAMO_OPSET
    settings = f"opset{opset}-{exporter}-classic-torch{torch.__version__}-{ckpt.spec.head}"
    folder = _export_folder(ckpt, cache_dir, settings)
    facts: dict[str, Any] = {
        "export_key": folder.name,
        "opset": opset,
        "exporter": "torch.onnx (legacy, TorchScript-based)"
        if exporter == "legacy"
        else f"torch.onnx (dynamo, onnxscript {_onnxscript_version()})",
    }

    def build(staging: Path) -> None:
        from harness.backends.fused import ExportModel

        model = ExportModel(ckpt.torch_model().float().cpu()).eval()
        if exporter == "legacy":
            _export_legacy(model, example, staging / "model.onnx")
        else:
            _export_dynamo(model, example, staging / "model.onnx", big_weights(ckpt) == "true")

    return _build_once(folder, facts, build)


def _stage_given(ckpt: Checkpoint, cache_dir: Path) -> Path:
    """A given export's files linked (or copied) into the cache, so the optimized and
    quantized variants are written there, never into the user's directory."""
    assert ckpt.onnx is not None
    source = ckpt.onnx.model_file

    def build(staging: Path) -> None:
        for file in source.parent.iterdir():  # the graph and its external data files
            if file.is_file() and file.name.startswith(source.name):
                try:
                    os.link(file, staging / file.name)
                except OSError:
                    shutil.copy2(file, staging / file.name)

    folder = cache_dir / "onnx" / f"given-{ckpt.weights.sha256[:20]}"
    return _build_once(folder, {}, build)[0]


def quantize_static_int8(
    plain: Path,
    calibration: tuple[Any, ...],
    facts: dict[str, Any],
    per_channel: bool,
    big: str,
) -> tuple[Path, dict[str, Any]]:
    """Static int8 (QDQ) of the exported graph, calibrated on ``calibration`` batches; cached
    by what it was calibrated on and how."""
    import json

    import numpy as np

    settings = facts | {"per_channel": per_channel}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    target = plain.with_name(f"model-int8-static-{key}.onnx")
    if usable(target, [target, target.with_suffix(".json")], "ONNX rewrite"):
        out = _offline(target.with_suffix(".json"), target, [])  # cached: nothing to write
    else:
        with tempfile.TemporaryDirectory(prefix="harness-calibration-") as tmp:
            npz = Path(tmp) / "calibration.npz"  # never in the cache: it may be read-only
            arrays = {f"ids{i}": b.input_ids.numpy() for i, b in enumerate(calibration)}
            arrays |= {f"mask{i}": b.attention_mask.numpy() for i, b in enumerate(calibration)}
            np.savez(npz, **arrays)
            out = _offline(
                target.with_suffix(".json"),
                target,
                [
                    "quantize-static",
                    str(plain),
                    str(target),
                    str(npz),
                    str(per_channel).lower(),
                    big,
                ],
            )
    info = {
        "quantization": {
            "method": "onnxruntime.quantization.quantize_static (QDQ, MinMax calibration)",
            "weights": "int8 (QInt8), MatMul and Gemm",
            "activations": "uint8, ranges fixed by calibration",
            "per_channel": per_channel,
            "peak_rss_bytes": out.get("peak_rss_bytes"),
            "ran": "in a child process",
        },
        "calibration": {"method": "MinMax over the calibration sentences", **facts},
        "cpu_isa": cpu_isa(),
    }
    return target, info


def to_float16(path: Path, big: str) -> tuple[Path, dict[str, Any]]:
    """The graph in float16 (ORT's converter, inputs and outputs kept), cached beside it."""
    target = path.with_name(path.stem + "-fp16.onnx")
    facts = _offline(target.with_suffix(".json"), target, ["fp16", str(path), str(target), big])
    return target, {"fp16": facts.get("fp16", {}) | {"peak_rss_bytes": facts.get("peak_rss_bytes")}}


def big_weights(ckpt: Checkpoint) -> str:
    """Beyond protobuf's 2 GB limit the weights go in a file beside the graph."""
    return "true" if ckpt.weights.param_bytes > 1_800_000_000 else "false"


def _offline(facts_file: Path, target: Path, args: list[str]) -> dict[str, Any]:
    """Run an offline rewrite once (cached with its facts: fusions, the child's peak RSS)."""
    import json

    from harness.backends.ort_offline import run_offline

    if not usable(target, [target, facts_file], "ONNX rewrite"):
        # Built in a private folder under its final names (a big model's weights go beside
        # the graph, named after it), then moved in: the weights and facts first, the graph
        # last, so a graph in the cache always has what it needs beside it.
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            staged_target = stage / target.name
            facts = run_offline([a if a != str(target) else str(staged_target) for a in args])
            (stage / facts_file.name).write_text(json.dumps(facts))
            for f in sorted(stage.iterdir(), key=lambda f: f.name == target.name):
                os.replace(f, target.parent / f.name)
            seal_entry(target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    data: dict[str, Any] = json.loads(facts_file.read_text())
    return data
