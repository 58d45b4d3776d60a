"""Accuracy of approximate backends (int8, reduced precision) against eager float32.

A max-|diff| tolerance of 1e-4 cannot hold for a quantized graph, and calling a 0.3 %
deviation "invalid" would hide the trade-off a user is weighing. What a user of an encoder
cares about is whether the outputs still mean the same: the cosine similarity of each
sentence's output (pooled embedding, logits) to float32's, and, for heads that choose, whether
the choice (argmax) is the same. The verdict is "approximate (cos …)" at or above the
variant's threshold, else "invalid".
"""

from __future__ import annotations

import numpy as np

from harness.records.types import Parity

__all__ = ["DEFAULT_MIN_COSINE", "accuracy_facts"]

DEFAULT_MIN_COSINE = 0.99
#: Heads whose output is a choice: top-1 agreement is meaningful.
_CHOOSING = (
    "sequence-classification",
    "multiple-choice",
    "token-classification",
    "question-answering",
)


def accuracy_facts(
    got: np.ndarray, reference: np.ndarray, head: str, min_cosine: float = DEFAULT_MIN_COSINE
) -> Parity:
    """Per-row (sentence) cosine similarity and top-1 agreement; ``ok`` by the mean cosine."""
    out: Parity = {"kind": "approximate", "reference": "eager float32 (cpu)"}
    if got.shape != reference.shape:
        return out | {"ok": False, "shape": list(got.shape), "max_abs_diff": None}
    if not (np.isfinite(got).all() and np.isfinite(reference).all()):
        return out | {"ok": False, "non_finite": "backend", "max_abs_diff": None}
    a = got.reshape(got.shape[0], -1).astype(np.float64)
    b = reference.reshape(reference.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1), 1.0)
    facts: Parity = out | {
        "rows": int(a.shape[0]),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.max(np.abs(got - reference))),
        "min_cosine": min_cosine,
    }
    if head in _CHOOSING:
        facts["top1_agreement"] = float(np.mean(got.argmax(axis=-1) == reference.argmax(axis=-1)))
    facts["ok"] = bool(facts["cosine_mean"] >= min_cosine)
    return facts
