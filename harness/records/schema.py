"""The record format as a published JSON Schema, generated from the dataclasses.

``harness/builtin/record.schema.json`` is this module's output, shipped in the package and
checked by the tests to be up to date; every record the test suite writes is validated
against it. Readers in other languages can load runs without reading this code.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from harness.records.results import SCHEMA_VERSION, STATUSES, Record, RunMeta
from harness.spec.config import BUILTIN_DIR

__all__ = ["RECORD_SCHEMA_PATH", "published_schema", "record_schema", "run_schema", "write_schema"]

RECORD_SCHEMA_PATH: Path = BUILTIN_DIR / "record.schema.json"

_DESCRIPTIONS = {
    "case_id": "model/backend/device/dtype/bBATCH/sSEQ/tTHREADS[/LANG/POLICY/nBATCHES]",
    "case": "the frozen Case: model spec, backend, shape, language, options, measure spec",
    "status": "ok, invalid (parity or accuracy failed; never timed), error, or skipped",
    "samples": "per-call seconds after warmup, in call order (call k ran batch k % n_batches)",
    "warmup": "per-call seconds of the warmup calls",
    "summary": "p50/p90/p99/mean/std/iqr/rel_ci/n, stability warnings, `unstable`",
    "throughput": "sequences/s, tokens/s, real tokens/s; for real text the no-padding ceiling",
    "memory": "peak RSS above the case start, RSS before, method, parameter bytes",
    "parity": "max |diff| vs eager float32 and tolerance, or accuracy (cosine, top-1)",
    "cold": "load, prepare, bind/capture, first call (s); preparation peak RSS (bytes)",
    "compute": "FLOPs per call and achieved TFLOP/s (every device); the roofline on a GPU",
    "gpu": "device memory, NVML, energy, kernels per call by kind",
    "traceback": "for error records: the whole Python traceback",
}


def _typeddict(tp: Any) -> dict[str, Any]:
    """A record part (:mod:`harness.records.types`): its keys and their types, every key
    optional, no other keys — so a writer that drifts from the declared format fails the
    suite's validation of every record it writes."""
    hints = typing.get_type_hints(tp)
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: _type(hint) for name, hint in hints.items()},
        "additionalProperties": False,
    }
    doc = (tp.__doc__ or "").strip()
    if doc and not doc.startswith(tp.__name__ + "("):  # functional TypedDicts have none
        out["description"] = " ".join(doc.split())
    return out


def _type(tp: Any) -> dict[str, Any]:
    if typing.is_typeddict(tp):
        return _typeddict(tp)
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_type(t) for t in typing.get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _type(item)}
    if origin is dict:
        _, value = typing.get_args(tp) or (str, Any)
        inner = _type(value)
        return {"type": "object", "additionalProperties": inner} if inner else {"type": "object"}
    if tp is dict:
        return {"type": "object"}
    return {}


def _object(cls: type, required: tuple[str, ...]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        prop = _type(hints[f.name])
        if f.name in _DESCRIPTIONS:
            prop["description"] = _DESCRIPTIONS[f.name]
        props[f.name] = prop
    return {"type": "object", "properties": props, "required": list(required)}


def record_schema() -> dict[str, Any]:
    schema = _object(Record, ("case_id", "case", "status"))
    schema["properties"]["status"]["enum"] = list(STATUSES)
    # Infinity appears where an interval could not be computed (too few samples).
    schema["properties"]["samples"]["items"] = {"type": "number"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"xlmr-harness record (schema_version {SCHEMA_VERSION}), one line of records.jsonl",
        **schema,
    }


def run_schema() -> dict[str, Any]:
    schema = _object(RunMeta, ("run_id", "created", "kind", "env", "config", "schema_version"))
    return {"title": "xlmr-harness run.json", **schema}


def write_schema(path: Path = RECORD_SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(published_schema(), indent=2) + "\n", encoding="utf-8")
    return path


def published_schema() -> dict[str, Any]:
    """One file: validates a record (a line of records.jsonl) by default; ``$defs/run``
    describes run.json."""
    record = record_schema()
    return {
        "$schema": record.pop("$schema"),
        "$id": "https://github.com/xlmr-harness/schema/record.schema.json",
        "$defs": {"record": record, "run": run_schema()},
        "$ref": "#/$defs/record",
    }


if __name__ == "__main__":  # python -m harness.records.schema regenerates the shipped file
    print(write_schema())
