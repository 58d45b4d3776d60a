"""What a real-text case adds after its batches were timed.

* the **no-padding ceiling**: the same sentences' real tokens at their mean length, unpadded,
  timed on the same backend, and the share of it the case's own batches reached;
* for backends that change the arithmetic's shape or precision, a check on the case's own
  sentences: packed execution against padded eager (parity), int8 against float32 (accuracy).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.inputs.textload import ceiling_batches
from harness.measure.accuracy import DEFAULT_MIN_COSINE, accuracy_facts
from harness.measure.parity import parity_check, parity_message
from harness.measure.timing import Samples, Timer, measure
from harness.records.results import Record
from harness.records.types import RealTextCheck
from harness.stats.summary import by_batch

if TYPE_CHECKING:
    from harness.execution.prepared import CaseInputs, PreparedGroup
    from harness.spec.sweep import Case

__all__ = ["check_real_text"]


def check_real_text(
    record: Record,
    case: Case,
    group: PreparedGroup,
    inputs: CaseInputs,
    timer: Timer,
    samples: Samples,
) -> None:
    """The ceiling for every real-text case; parity or accuracy where the backend needs it."""
    _no_padding_ceiling(record, case, group, inputs, timer, samples)
    if group.parity.get("kind") == "approximate":
        _real_text_accuracy(record, case, group, inputs)
    elif group.info.get("pack"):
        _real_text_parity(record, case, group, inputs)


def _outputs(group: PreparedGroup, inputs: CaseInputs) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per batch of the case: the backend's outputs and padded eager float32's."""
    with torch.inference_mode():
        for batch, call in zip(inputs.batches, inputs.calls, strict=True):
            got = group.backend.output(call())
            ref = group.ckpt.torch_model()(batch.input_ids, batch.attention_mask).float().numpy()
            yield got, ref


def _per_batch_medians(values: list[float], n_batches: int) -> list[float]:
    return [float(np.median(s)) for s in by_batch(values, n_batches)]


def _no_padding_ceiling(
    record: Record,
    case: Case,
    group: PreparedGroup,
    inputs: CaseInputs,
    timer: Timer,
    samples: Samples,
) -> None:
    """Time the same sentences' real tokens at their mean length, unpadded, and record what
    share of that ceiling the case's own batches reached (both on per-batch medians)."""
    ceiling = ceiling_batches(inputs.batches, group.ckpt.arch.vocab)
    bound = [group.backend.bind(b) for b in ceiling]
    calls: list[Callable[[], object]] = [functools.partial(group.backend.run, x) for x in bound]
    spec = dataclasses.replace(case.measure, max_time_s=max(0.2, case.measure.max_time_s / 2))
    measured = measure(timer, calls, spec)
    n = len(inputs.batches)
    if len(measured.values) < n or len(samples.values) < n:
        return
    t_case = _per_batch_medians(samples.values, n)
    t_ceiling = _per_batch_medians(measured.values, n)
    real = sum(b.real_tokens for b in inputs.batches)
    ceiling_tokens = sum(b.positions for b in ceiling)
    case_rate = real / sum(t_case)
    ceiling_rate = ceiling_tokens / sum(t_ceiling)
    record.workload["ceiling"] = {
        "what": "each batch's real tokens at their mean length, no padding",
        "shapes": [list(b.input_ids.shape) for b in ceiling],
        "p50_by_batch_s": t_ceiling,
        "samples": measured.values,
    }
    record.throughput |= {
        "ceiling_real_tokens_per_s": ceiling_rate,
        "real_tokens_per_s_at_batch_p50": case_rate,
        "share_of_ceiling": case_rate / ceiling_rate,
    }


def _real_text_parity(record: Record, case: Case, group: PreparedGroup, inputs: CaseInputs) -> None:
    """An exact backend that reshapes the work (packing) on the case's own real sentences:
    every batch's outputs against padded eager float32's, held to the usual tolerance."""
    worst: RealTextCheck = {"max_abs_diff": 0.0, "ok": True}
    for got, ref in _outputs(group, inputs):
        check = parity_check(got, ref, case.dtype)
        if not check["ok"] or (check["max_abs_diff"] or 0) >= (worst["max_abs_diff"] or 0):
            worst = check
        if not check["ok"]:
            break
    record.parity = group.parity | {"real_text": worst | {"batches": len(inputs.batches)}}
    if not worst["ok"]:
        record.status = "invalid"
        record.message = f"on real {case.language} sentences: {parity_message(worst)}"


def _real_text_accuracy(
    record: Record, case: Case, group: PreparedGroup, inputs: CaseInputs
) -> None:
    """An approximate backend on real sentences: its outputs for every batch of the case
    against eager float32's, per sentence. Below the threshold the case is ``invalid``."""
    threshold = float(group.parity.get("min_cosine", DEFAULT_MIN_COSINE))
    facts = [
        accuracy_facts(got, ref, case.model.head, threshold) for got, ref in _outputs(group, inputs)
    ]
    rows = sum(int(f.get("rows", 0)) for f in facts)
    merged: RealTextCheck = {
        "batches": len(facts),
        "rows": rows,
        # Weighted by sentences, so a short last batch counts for what it holds.
        "cosine_mean": sum(f.get("cosine_mean", 0.0) * f.get("rows", 0) for f in facts)
        / max(rows, 1),
        "cosine_min": min(f.get("cosine_min", 0.0) for f in facts),
    }
    if all("top1_agreement" in f for f in facts):
        merged["top1_agreement"] = sum(f["top1_agreement"] * f["rows"] for f in facts) / max(
            rows, 1
        )
    record.parity = group.parity | {"real_text": merged}
    if merged["cosine_mean"] < threshold:
        record.status = "invalid"
        record.message = (
            f"approximate outputs below the threshold on real {case.language} sentences: "
            f"mean cosine {merged['cosine_mean']:.4f} < {threshold}"
        )
