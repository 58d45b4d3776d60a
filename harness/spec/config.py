"""Frozen checkpoint and measurement specs, loaded from TOML and validated once.

A spec is data: constructing one never touches the network, the environment or the disk.
Loading a checkpoint from a spec is :mod:`harness.checkpoints.load`' job.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = [
    "BUILTIN_MODELS_DIR",
    "BUILTIN_SWEEPS_DIR",
    "HEADS",
    "ArchSpec",
    "MeasureSpec",
    "ModelSpec",
    "arch_from_config",
    "load_model_spec",
    "read_toml",
    "resolve_model",
]

#: Built-in checkpoint specs and sweeps ship inside the package, so `-m xlmr-base` and
#: `--sweep smoke` work from any directory after `pip install`.
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"
BUILTIN_MODELS_DIR = BUILTIN_DIR / "models"
BUILTIN_SWEEPS_DIR = BUILTIN_DIR / "sweeps"

#: Heads that intermediate tasks leave on XLM-R (Phang et al. 2020): retrieval uses the bare
#: encoder, MNLI/XNLI a 3-way classifier, SQuAD a span head, NER a token head, HellaSwag a
#: multiple-choice head that runs the encoder once per ending.
HEADS = (
    "encoder",
    "sequence-classification",
    "question-answering",
    "token-classification",
    "multiple-choice",
)
DTYPES = ("float32", "tf32", "bfloat16", "float16")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into one :class:`HarnessError` line."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise HarnessError(f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read ({exc.strerror})") from None


def _check_keys(where: str, data: dict[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HarnessError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    # bool is an int in Python; a TOML `true` where a size belongs is still a user error.
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise HarnessError(f"{where}: {key} must be {name}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ArchSpec:
    """XLM-R shape. Defaults are XLM-R base's real hyperparameters."""

    layers: int = 12
    hidden: int = 768
    ffn: int = 3072
    heads: int = 12
    vocab: int = 250002
    max_positions: int = 514
    type_vocab: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _typed("arch", f.name, getattr(self, f.name), int)
            if value <= 0:
                raise HarnessError(f"arch: {f.name} must be > 0, got {value}")
        if self.hidden % self.heads:
            raise HarnessError(f"arch: hidden ({self.hidden}) must divide by heads ({self.heads})")
        if self.max_positions < 3:
            raise HarnessError("arch: max_positions must be at least 3")

    @property
    def max_seq_len(self) -> int:
        """Longest input: RoBERTa-style positions start after the padding index (offset 2)."""
        return self.max_positions - 2


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One checkpoint: where it comes from, which head it serves with, and its dtype.

    ``source`` is ``"random-init"`` (built offline from ``arch`` and ``seed``), a local
    directory, or a hub id. A directory may hold an ONNX export instead of PyTorch weights
    (``optimum-cli export onnx``, :mod:`harness.spec.onnx_export`); ``reference`` then names
    the PyTorch weights (a directory or hub id) its outputs are checked against.
    """

    name: str
    source: str
    head: str = "encoder"
    seed: int = 0
    arch: ArchSpec = field(default_factory=ArchSpec)
    num_labels: int = 3
    num_choices: int = 4
    revision: str | None = None
    description: str = ""
    reference: str | None = None

    def __post_init__(self) -> None:
        where = f"model {self.name!r}"
        _typed(where, "name", self.name, str)
        _typed(where, "source", self.source, str)
        if not self.name or not self.source:
            raise HarnessError(f"{where}: name and source must not be empty")
        if self.head not in HEADS:
            raise HarnessError(f"{where}: unknown head {self.head!r} (known: {', '.join(HEADS)})")
        for key in ("seed", "num_labels", "num_choices"):
            _typed(where, key, getattr(self, key), int)
        if self.num_labels < 1 or self.num_choices < 2:
            raise HarnessError(f"{where}: num_labels must be >= 1 and num_choices >= 2")
        if self.reference is not None:
            _typed(where, "reference", self.reference, str)

    @property
    def is_onnx_export(self) -> bool:
        """A local directory holding an ONNX export and no PyTorch weights."""
        from harness.spec.onnx_export import is_onnx_export_dir

        return self.is_local and is_onnx_export_dir(Path(self.source).expanduser())

    @property
    def is_random_init(self) -> bool:
        return self.source == "random-init"

    @property
    def is_local(self) -> bool:
        return not self.is_random_init and Path(self.source).expanduser().exists()

    @property
    def choices(self) -> int:
        """Sequences the encoder runs per example (the multiple-choice head multiplies work)."""
        return self.num_choices if self.head == "multiple-choice" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """Stable hash of everything that determines the built weights (the cache key);
        the name and description are labels, not weights."""
        blob = json.dumps(self.to_dict() | {"description": "", "name": ""}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model spec") -> ModelSpec:
        _check_keys(where, data, cls)
        data = dict(data)
        arch = data.pop("arch", {})
        if not isinstance(arch, dict):
            raise HarnessError(f"{where}: [arch] must be a table")
        _check_keys(f"{where} [arch]", arch, ArchSpec)
        if "name" not in data or "source" not in data:
            raise HarnessError(f"{where}: 'name' and 'source' are required")
        return cls(arch=ArchSpec(**arch), **data)


def load_model_spec(path: Path) -> ModelSpec:
    return ModelSpec.from_dict(read_toml(path), where=str(path))


def resolve_model(ref: str, models_dir: Path | None = None) -> ModelSpec:
    """Turn what a user typed into a spec.

    Order: a TOML file path; a local checkpoint directory (has ``config.json``); a built-in
    spec name from ``models_dir`` (default: the package's ``builtin/models/``).
    """
    path = Path(ref).expanduser()
    if ref.endswith(".toml"):
        return load_model_spec(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HarnessError(f"{ref}: directory has no config.json, not a checkpoint")
        config = _read_json(path / "config.json")
        arch = arch_from_config(config, where=ref)
        from harness.spec.onnx_export import is_onnx_export_dir

        if is_onnx_export_dir(path):
            return _onnx_export_spec(path, arch, config)
        spec_file = path / "harness_spec.json"
        head = "encoder"
        if spec_file.is_file():
            head = str(_read_json(spec_file).get("head", "encoder"))
        return ModelSpec(name=path.name, source=str(path.resolve()), head=head, arch=arch)
    directory = models_dir or BUILTIN_MODELS_DIR
    candidate = directory / f"{ref}.toml"
    if candidate.is_file():
        return load_model_spec(candidate)
    known = sorted(p.stem for p in directory.glob("*.toml"))
    looks_like_path = "/" in ref and (ref.startswith((".", "/", "~")) or path.parent.exists())
    if looks_like_path:
        raise HarnessError(f"{ref}: no such checkpoint directory")
    if "/" in ref:  # a hub id: org/name
        return ModelSpec(name=ref.replace("/", "--"), source=ref)
    raise HarnessError(f"unknown model {ref!r} (built-in: {', '.join(known)})")


def _onnx_export_spec(path: Path, arch: ArchSpec, config: dict[str, Any]) -> ModelSpec:
    """An ``optimum-cli`` export directory: the head from its graph; as the reference, the
    directory its config was exported from (``_name_or_path``) when that holds weights here."""
    from harness.spec.onnx_export import inspect_export, is_onnx_export_dir

    export = inspect_export(path)
    origin = Path(str(config.get("_name_or_path", ""))).expanduser()
    reference = None
    local = str(origin) not in ("", ".") and (origin / "config.json").is_file()
    if local and not is_onnx_export_dir(origin):
        reference = str(origin.resolve())
    return ModelSpec(
        name=path.name,
        source=str(path.resolve()),
        head=export.head,
        arch=arch,
        num_labels=export.num_labels or 3,
        reference=reference,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a JSON object")
    return data


XLMR_MODEL_TYPES = ("xlm-roberta",)


def arch_from_config(config: dict[str, Any], where: str) -> ArchSpec:
    """Read an XLM-R shape from a Hugging Face ``config.json``; refuse other families."""
    model_type = config.get("model_type")
    if model_type not in XLMR_MODEL_TYPES:
        raise HarnessError(f"{where}: model_type is {model_type!r}, not an XLM-R checkpoint")
    try:
        return ArchSpec(
            layers=config["num_hidden_layers"],
            hidden=config["hidden_size"],
            ffn=config["intermediate_size"],
            heads=config["num_attention_heads"],
            vocab=config["vocab_size"],
            max_positions=config["max_position_embeddings"],
            type_vocab=config.get("type_vocab_size", 1),
        )
    except KeyError as exc:
        raise HarnessError(f"{where}: config.json lacks {exc.args[0]}") from None


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """How long to measure one case.

    Steady state is sampled until the 95 % confidence interval of the median is within
    ``target_rel_ci`` of the median, or ``max_time_s`` is spent, or ``max_iters`` are taken;
    ``min_iters`` keeps the order-statistic interval meaningful.
    """

    warmup_iters: int = 3
    min_iters: int = 10
    max_iters: int = 2000
    target_rel_ci: float = 0.02
    max_time_s: float = 5.0

    def __post_init__(self) -> None:
        for key in ("warmup_iters", "min_iters", "max_iters"):
            value = _typed("measure", key, getattr(self, key), int)
            if value < 0 or (key != "warmup_iters" and value == 0):
                raise HarnessError(f"measure: {key} must be positive, got {value}")
        for key in ("target_rel_ci", "max_time_s"):
            value = _typed("measure", key, getattr(self, key), (int, float))
            if value <= 0:
                raise HarnessError(f"measure: {key} must be > 0, got {value}")
        if self.min_iters > self.max_iters:
            raise HarnessError("measure: min_iters must not exceed max_iters")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasureSpec:
        _check_keys("[measure]", data, cls)
        return cls(**data)
