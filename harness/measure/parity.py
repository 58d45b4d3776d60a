"""Parity of exact backends against eager float32: the dtype's tolerance, the check, and the
one-line reason a group is ``invalid``. (Approximate backends: :mod:`harness.measure.accuracy`.)"""

from __future__ import annotations

import numpy as np

from harness.records.types import Parity, RealTextCheck

__all__ = ["parity_check", "parity_message", "parity_tolerance"]


def parity_tolerance(dtype: str, reference: np.ndarray) -> float:
    """Largest acceptable |backend - eager| for a case, scaled by the output's magnitude."""
    scale = max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)
    per_dtype = {"float32": 1e-4, "tf32": 1e-2, "bfloat16": 6e-2, "float16": 2e-2}
    return per_dtype.get(dtype, 1e-4) * scale


def parity_check(got: np.ndarray, reference: np.ndarray, dtype: str) -> Parity:
    """Max |backend − eager float32| against the dtype's tolerance. NaN or infinite outputs
    (either side) are reported as such, never as a parity number."""
    out: Parity = {"reference": "eager float32 (cpu)"}
    if not np.isfinite(reference).all():
        return out | {"ok": False, "non_finite": "reference", "max_abs_diff": None}
    if not np.isfinite(got).all():
        return out | {"ok": False, "non_finite": "backend", "max_abs_diff": None}
    if got.shape != reference.shape:
        return out | {"ok": False, "shape": list(got.shape), "max_abs_diff": None}
    diff = float(np.max(np.abs(got - reference))) if got.size else 0.0
    tol = parity_tolerance(dtype, reference)
    return out | {"max_abs_diff": diff, "tolerance": tol, "ok": bool(diff <= tol)}


def parity_message(parity: Parity | RealTextCheck) -> str:
    """Why a group is ``invalid``, in one line."""
    if parity.get("checked") is False:
        return str(parity.get("note", "outputs not checked"))
    if parity.get("kind") == "approximate" and "cosine_mean" in parity:
        return (
            f"approximate outputs below the threshold: mean cosine {parity['cosine_mean']:.4f}"
            f" < {parity['min_cosine']}"
        )
    if parity.get("non_finite") == "reference":
        return "non-finite outputs (NaN/inf) from eager float32 itself: the weights are broken"
    if parity.get("non_finite"):
        return "non-finite outputs (NaN/inf) from this backend"
    if "shape" in parity:
        return f"output shape {parity['shape']} differs from eager's"
    return (
        f"outputs differ from eager: max |diff| {parity['max_abs_diff']:.3g} > "
        f"{parity['tolerance']:.3g}"
    )
