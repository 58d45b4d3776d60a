"""ONNX exports made by others, as checkpoints: a directory from ``optimum-cli export onnx``
(``model.onnx`` + ``config.json`` + tokenizer files, no PyTorch weights).

Such a directory runs on the ONNX Runtime backends with the same workloads as any checkpoint.
Its graph answers with transformers' outputs (``last_hidden_state``, ``logits``,
``start_logits``/``end_logits``), so :func:`serving_output` turns them into what the harness's
own serving module returns for the head (mean-pooled embeddings, logits, stacked span
logits), inside the timed call like the pooling of the harness's own graph. The head is read
from the graph's outputs, not guessed from a file name. Parity is checked against PyTorch
weights when a spec names them (``reference``); without them the record says it was not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.records.types import OnnxExportInfo

__all__ = [
    "ONNX_FILE",
    "OnnxExport",
    "inspect_export",
    "is_onnx_export_dir",
    "serving_output",
]

ONNX_FILE = "model.onnx"
_TORCH_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.pt", "*.pth")


def is_onnx_export_dir(path: Path) -> bool:
    """A directory with ``model.onnx`` and a config, but no PyTorch weights."""
    if not (path.is_dir() and (path / ONNX_FILE).is_file() and (path / "config.json").is_file()):
        return False
    return not any(any(path.glob(p)) for p in _TORCH_WEIGHTS)


@dataclass(frozen=True)
class OnnxExport:
    """What a given ONNX graph takes and returns, and the head that follows from it."""

    directory: Path
    inputs: dict[str, int]  # name -> rank
    outputs: tuple[str, ...]
    head: str
    num_labels: int | None

    @property
    def model_file(self) -> Path:
        return self.directory / ONNX_FILE

    def describe(self) -> OnnxExportInfo:
        return {
            "directory": str(self.directory),
            "inputs": dict(self.inputs),
            "outputs": list(self.outputs),
            "head": self.head,
        }


def _dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def inspect_export(directory: Path) -> OnnxExport:
    """Read the graph's inputs and outputs (not its weights) and infer the serving head."""
    import onnx

    path = directory / ONNX_FILE
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise HarnessError(f"{path}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: len(_dims(i)) for i in graph.input if i.name not in initializers}
    outputs = {o.name: _dims(o) for o in graph.output}
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise HarnessError(
            f"{path}: inputs are {sorted(inputs)}; an XLM-R export takes input_ids and "
            "attention_mask"
        )
    head, labels = _head(outputs, inputs["input_ids"], path)
    return OnnxExport(directory, inputs, tuple(outputs), head, labels)


def _head(outputs: dict[str, list[int | str]], input_rank: int, path: Path) -> tuple[str, Any]:
    last = outputs.get("logits", [])
    labels = last[-1] if last and isinstance(last[-1], int) else None
    if input_rank == 3 and "logits" in outputs:
        return "multiple-choice", None
    if "start_logits" in outputs and "end_logits" in outputs:
        return "question-answering", None
    if "logits" in outputs:
        return ("token-classification" if len(last) == 3 else "sequence-classification"), labels
    if "last_hidden_state" in outputs:
        return "encoder", None
    raise HarnessError(
        f"{path}: outputs are {sorted(outputs)}; expected last_hidden_state, logits or "
        "start_logits/end_logits (an optimum-cli export of XLM-R)"
    )


def serving_output(
    head: str, outputs: dict[str, np.ndarray], attention_mask: np.ndarray
) -> np.ndarray:
    """The harness's serving output for ``head`` from transformers-style graph outputs
    (the same arithmetic as :class:`harness.checkpoints.heads.ServingModel`)."""
    if head == "encoder":
        hidden = outputs["last_hidden_state"]
        mask = attention_mask[..., None].astype(hidden.dtype)
        counts = np.maximum(mask.sum(axis=1), 1.0)
        return np.asarray((hidden * mask).sum(axis=1) / counts)
    if head == "question-answering":
        return np.stack([outputs["start_logits"], outputs["end_logits"]], axis=1)
    return np.asarray(outputs["logits"])
