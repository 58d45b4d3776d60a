"""What can be checked in a checkpoint directory before anything is loaded or written.

A run must not start, create its directory and then record ``error`` for a checkpoint that
was never loadable: every check here reads only the config and the safetensors headers (a few
kilobytes), so a sweep can refuse bad input with one line and exit 2 before it measures.

Checks: ``config.json`` readable and XLM-R; no custom code asked for (``auto_map``) unless the
user accepts measuring the plain XLM-R architecture instead; weights present, not pickle-only
unless pickle is trusted; every safetensors file (and every shard an index names) with a
valid, complete header; the word-embedding matrix matching the config's vocabulary and width.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.spec.config import arch_from_config

__all__ = ["PICKLE_SUFFIXES", "check_checkpoint_dir", "read_safetensors_header"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
#: safetensors caps its header at 100 MB; a larger length prefix is garbage, not a header.
_MAX_HEADER = 100_000_000


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a safetensors file, after checking the file holds all the data it names."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise HarnessError(f"{path}: weights file is truncated (no safetensors header)")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_MAX_HEADER, size - 8):
                raise HarnessError(f"{path}: not a safetensors file (bad header length)")
            raw = fh.read(length)
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read weights ({exc.strerror})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HarnessError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise HarnessError(f"{path}: not a safetensors file (header is not a table)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = info["data_offsets"]
            end = max(end, int(stop))
            if int(start) > int(stop):
                raise ValueError
        except (TypeError, KeyError, ValueError):
            raise HarnessError(f"{path}: corrupt safetensors header (tensor {name!r})") from None
    if 8 + length + end > size:
        raise HarnessError(
            f"{path}: weights file is truncated ({size} bytes, the header names {8 + length + end})"
        )
    return header


def _read_config(path: Path) -> dict[str, Any]:
    config = path / "config.json"
    if not config.is_file():
        raise HarnessError(f"{path}: no config.json, not a Hugging Face checkpoint")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{config}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise HarnessError(f"{config}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{config}: expected a JSON object")
    return data


def _safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise HarnessError(f"{index}: not a valid safetensors index") from None
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise HarnessError(
                f"{path}: shard(s) named in the index are missing: {', '.join(missing)}"
            )
        return [path / s for s in shards]
    return sorted(path.glob("*.safetensors"))


def check_checkpoint_dir(path: Path, *, allow_pickle: bool, allow_custom_code: bool) -> None:
    """Raise one :class:`HarnessError` line for anything that would make ``path`` fail to
    load, or load as something other than what its owner meant."""
    if not path.is_dir():
        raise HarnessError(f"{path}: no such checkpoint directory")
    config = _read_config(path)
    arch = arch_from_config(config, where=str(path))
    if config.get("auto_map") and not allow_custom_code:
        raise HarnessError(
            f"{path}: config.json asks for custom code (auto_map); the harness never runs it and "
            "would measure the plain XLM-R architecture instead: pass --ignore-custom-code to "
            "accept that"
        )
    files = _safetensors_files(path)
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not files:
        if not pickles:
            raise HarnessError(f"{path}: no weights file (*.safetensors)")
        if not allow_pickle:
            raise HarnessError(
                f"{path}: only pickle weights ({', '.join(pickles)}); pickle can run code when "
                "loaded, pass --allow-pickle to trust it"
            )
        return  # trusted pickle: nothing to read without unpickling
    embedding = None
    for file in files:
        header = read_safetensors_header(file)
        for name, info in header.items():
            if name.endswith("word_embeddings.weight"):
                embedding = (file, info.get("shape"))
    if embedding is not None:
        file, shape = embedding
        if not isinstance(shape, list) or shape != [arch.vocab, arch.hidden]:
            raise HarnessError(
                f"{file}: word embeddings are {shape}, but config.json says vocabulary "
                f"{arch.vocab} × hidden {arch.hidden}"
            )
