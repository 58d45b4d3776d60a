"""Load a checkpoint from a spec: built offline, from a local directory, or from the hub.

Loading is safe by default: safetensors only (pickle ``.bin``/``.pt`` files are refused unless
the caller opts in), remote code is never executed, and anything that is not XLM-R is refused.
Random-init models are built once per spec and cached as safetensors, keyed by the spec's
fingerprint, so every process of a sweep loads bit-identical weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.cache import seal_entry, usable
from harness.checkpoints.files import check_checkpoint_dir
from harness.checkpoints.heads import ServingModel, build_hf_model, hf_model_class
from harness.checkpoints.weights import WeightStats, weight_stats
from harness.errors import HarnessError
from harness.records.types import CheckpointInfo
from harness.spec.config import ArchSpec, ModelSpec, arch_from_config
from harness.spec.onnx_export import OnnxExport

__all__ = [
    "Checkpoint",
    "build_random_init",
    "hub_problem",
    "load_checkpoint",
    "preflight",
    "xlmr_config",
]

log = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Checkpoint:
    """A loaded checkpoint, ready to hand to a backend.

    ``model`` is the PyTorch serving module; for an ONNX export directory (``onnx`` set) it
    is the reference weights' module when the spec names them, else ``None``."""

    spec: ModelSpec
    model: ServingModel | None
    arch: ArchSpec
    path: Path | None
    weights: WeightStats
    load_s: float
    onnx: OnnxExport | None = None

    def torch_model(self) -> ServingModel:
        if self.model is None:
            raise HarnessError(
                f"{self.spec.name} is an ONNX export with no PyTorch weights: run it on an "
                "onnxruntime backend (a spec's `reference` names weights for its parity check)"
            )
        return self.model

    def describe(self) -> CheckpointInfo:
        info: CheckpointInfo = {
            "name": self.spec.name,
            "source": self.spec.source,
            "head": self.spec.head,
            "path": str(self.path) if self.path else None,
            "arch": {
                "layers": self.arch.layers,
                "hidden": self.arch.hidden,
                "ffn": self.arch.ffn,
                "heads": self.arch.heads,
                "vocab": self.arch.vocab,
                "max_positions": self.arch.max_positions,
            },
            "weights": self.weights.to_record(),
        }
        if self.onnx is not None:
            info["onnx_export"] = self.onnx.describe()
            info["reference"] = self.spec.reference
        return info


def xlmr_config(spec: ModelSpec) -> Any:
    """A transformers config with XLM-R's conventions (pad 1, bos 0, eos 2, RoBERTa positions)."""
    from transformers import XLMRobertaConfig

    a = spec.arch
    config = XLMRobertaConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        intermediate_size=a.ffn,
        max_position_embeddings=a.max_positions,
        type_vocab_size=a.type_vocab,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=2 if spec.head == "question-answering" else spec.num_labels,
    )
    return config


def build_random_init(spec: ModelSpec, cache_dir: Path) -> Path:
    """Build (once) and cache a random-init checkpoint; return its directory."""
    target = cache_dir / "models" / spec.fingerprint()
    if usable(target, [target / "config.json"], f"checkpoint {spec.name}"):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model: Any = build_hf_model(spec.head, xlmr_config(spec))
    # Build in a private directory and rename: a killed build never leaves a half cache entry.
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "harness_spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
        seal_entry(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race; its copy is identical, if whole
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "config.json").is_file():
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _from_pretrained(spec: ModelSpec, where: str, allow_pickle: bool, attn: str) -> Any:
    cls = hf_model_class(spec.head)
    kwargs: dict[str, Any] = {
        "trust_remote_code": False,
        "use_safetensors": None if allow_pickle else True,
        "attn_implementation": attn,
    }
    if spec.head == "encoder":
        kwargs["add_pooling_layer"] = False
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.head in ("sequence-classification", "token-classification"):
        kwargs["num_labels"] = spec.num_labels
    try:
        return cls.from_pretrained(where, **kwargs)
    except HarnessError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "safetensors" in first.lower() or "header" in first.lower() or "incomplete" in first:
            raise HarnessError(f"{where}: weights file is truncated or corrupt ({first})") from None
        raise HarnessError(f"{where}: cannot load checkpoint ({first})") from None
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise HarnessError(f"{where}: weights file is truncated or corrupt ({exc})") from None


def load_checkpoint(
    spec: ModelSpec,
    cache_dir: Path,
    *,
    dtype: str = "float32",
    allow_pickle: bool = False,
    allow_custom_code: bool = False,
    attn_implementation: str = "sdpa",
) -> Checkpoint:
    """Load ``spec`` as an eval-mode :class:`ServingModel` in ``dtype``.

    ``attn_implementation`` is fixed at load time (XLM-R in transformers 4.57 cannot switch
    it afterwards): ``sdpa`` (PyTorch's fused attention) or ``eager`` (plain matmuls).
    """
    start = time.perf_counter()
    if spec.is_onnx_export:
        return _load_onnx_export(spec, cache_dir, dtype, allow_pickle, attn_implementation, start)
    path: Path | None
    if spec.is_random_init:
        path = build_random_init(spec, cache_dir)
        check_checkpoint_dir(path, allow_pickle=False, allow_custom_code=False)
    elif spec.is_local:
        path = Path(spec.source).expanduser()
        check_checkpoint_dir(path, allow_pickle=allow_pickle, allow_custom_code=allow_custom_code)
    elif spec.source.startswith((".", "/", "~")):
        raise HarnessError(f"{spec.source}: no such checkpoint directory")
    else:
        path = None
    hf = _from_pretrained(
        spec, str(path) if path else spec.source, allow_pickle, attn_implementation
    )
    if getattr(hf.config, "model_type", None) != "xlm-roberta":
        raise HarnessError(f"{spec.source}: model_type {hf.config.model_type!r} is not XLM-R")
    arch = arch_from_config(hf.config.to_dict(), where=spec.source)
    hf = hf.to(_TORCH_DTYPES[dtype]).eval()
    model = ServingModel(hf, spec.head).eval()
    load_s = time.perf_counter() - start
    return Checkpoint(
        spec, model, arch, path, _cached_weight_stats(model, path, dtype, cache_dir), load_s
    )


def _export_of(spec: ModelSpec) -> OnnxExport:
    """The ONNX export ``spec`` names, refused when its graph serves another head."""
    from harness.spec.onnx_export import inspect_export

    export = inspect_export(Path(spec.source).expanduser())
    if export.head != spec.head:
        raise HarnessError(
            f"{spec.name}: the spec says head {spec.head!r}, the ONNX graph serves {export.head!r}"
        )
    return export


def _load_onnx_export(
    spec: ModelSpec, cache_dir: Path, dtype: str, allow_pickle: bool, attn: str, start: float
) -> Checkpoint:
    """An ``optimum-cli`` export directory; its reference weights loaded when named."""
    from harness.checkpoints.weights import onnx_weight_stats

    path = Path(spec.source).expanduser()
    export = _export_of(spec)
    arch = arch_from_config(json.loads((path / "config.json").read_text()), where=spec.source)
    model = None
    if spec.reference:
        ref_spec = ModelSpec(
            name=f"{spec.name} (reference)",
            source=spec.reference,
            head=spec.head,
            arch=arch,
            num_labels=spec.num_labels,
            num_choices=spec.num_choices,
        )
        if ref_spec.is_onnx_export:
            raise HarnessError(f"{spec.name}: reference {spec.reference} is itself an ONNX export")
        reference = load_checkpoint(
            ref_spec, cache_dir, dtype=dtype, allow_pickle=allow_pickle, attn_implementation=attn
        )
        if reference.arch != arch:
            raise HarnessError(
                f"{spec.name}: reference {spec.reference} has another shape than the export"
            )
        model = reference.model
    stats = onnx_weight_stats(export.model_file)
    return Checkpoint(spec, model, arch, path, stats, time.perf_counter() - start, export)


def _cached_weight_stats(
    model: ServingModel, path: Path | None, dtype: str, cache_dir: Path
) -> WeightStats:
    """Hashing and scanning 1–2 GB of weights takes seconds; the answer only changes when the
    files do, so it is cached by (directory, file names, sizes, mtimes, dtype, head)."""
    if path is None:
        return weight_stats(model)
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")
    )
    ident = json.dumps(
        [str(path.resolve()), dtype, str(model.head)]
        + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    )
    entry = cache_dir / "weight-stats" / f"{hashlib.sha256(ident.encode()).hexdigest()[:24]}.json"
    try:
        return WeightStats.from_dict(json.loads(entry.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        pass
    stats = weight_stats(model)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stats.to_record()))
        os.replace(tmp, entry)
    except OSError:  # a read-only cache only costs the recomputation
        pass
    return stats


def preflight(
    spec: ModelSpec, *, allow_pickle: bool = False, allow_custom_code: bool = False
) -> None:
    """Fail early, with one line: a local checkpoint that would not load as the XLM-R its
    owner meant (:func:`~harness.checkpoints.files.check_checkpoint_dir`), or a hub checkpoint
    that can be neither found cached nor fetched.

    Called before a run directory is created, so bad input gets a clear error and no
    half-written run.
    """
    if spec.reference and not spec.is_onnx_export:
        raise HarnessError(
            f"{spec.name}: 'reference' names PyTorch weights for an ONNX export directory; "
            f"{spec.source} is not one (model.onnx + config.json, no weights)"
        )
    if spec.is_random_init:
        return
    if spec.is_onnx_export:
        _export_of(spec)
        if spec.reference:
            ref = ModelSpec(name=f"{spec.name} (reference)", source=spec.reference)
            preflight(ref, allow_pickle=allow_pickle, allow_custom_code=allow_custom_code)
        return
    if spec.is_local:
        check_checkpoint_dir(
            Path(spec.source).expanduser(),
            allow_pickle=allow_pickle,
            allow_custom_code=allow_custom_code,
        )
        return
    if spec.source.startswith((".", "/", "~")):
        raise HarnessError(f"{spec.source}: no such checkpoint directory")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return
    cached = try_to_load_from_cache(spec.source, "config.json", revision=spec.revision)
    if isinstance(cached, str):
        return
    problem = hub_problem(spec.source, spec.revision)
    if problem is not None:
        raise HarnessError(
            f"{spec.name}: {spec.source!r} is not cached and {problem}; use a local "
            "checkpoint directory or a random-init spec"
        )


#: Seconds in all that asking the hub about a checkpoint may take before giving up.
HUB_DEADLINE_S = 5.0


def hub_problem(
    repo: str, revision: str | None = None, deadline_s: float = HUB_DEADLINE_S
) -> str | None:
    """Why ``repo`` cannot be fetched from the Hugging Face hub (None: it can), decided within
    ``deadline_s`` in all: offline, not found, gated, or no answer in time. The query runs in
    a daemon thread, so no retrying client can hold a command for minutes."""
    import threading

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return "the hub is switched off (HF_HUB_OFFLINE)"
    answer: list[str | None] = []

    def ask() -> None:
        try:
            from huggingface_hub import model_info

            model_info(repo, revision=revision, timeout=deadline_s)
            answer.append(None)
        except Exception as exc:  # classified below; any failure means "cannot fetch"
            answer.append(_hub_reason(exc))

    thread = threading.Thread(target=ask, daemon=True, name="hub-preflight")
    thread.start()
    thread.join(deadline_s)
    if not answer:
        return f"the hub did not answer within {deadline_s:g} s (offline?)"
    return answer[0]


def _hub_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Gated" in name:
        return "it is gated on the hub (accept its terms and log in: `hf auth login`)"
    if "RepositoryNotFound" in name or "RevisionNotFound" in name or "EntryNotFound" in name:
        return "the hub has no such repository or revision"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return "the hub refused access (private or gated: log in with `hf auth login`)"
    if status == 404:
        return "the hub has no such repository or revision"
    if "Offline" in name or "Connect" in name or "Timeout" in name or "resolve" in str(exc):
        return "the hub cannot be reached (offline?)"
    text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else name
    return f"the hub could not be asked ({text})"
