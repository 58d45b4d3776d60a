"""A task case's answers against eager float32's on the case's own inputs.

Logits can agree to 1e-6 and still flip a label, and an int8 graph can keep its cosine at
0.999 while moving answers: what a task serves is its answers. So every task case runs its
calls once more after timing and compares each answer with the reference model's (labels for
``pairs``, word labels for ``tagging``, the chosen span for ``qa``, the nearest candidate for
``retrieval`` — the reference with its own encoding of the pool), and records the share that
agree (``workload.task.agreement``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.inputs.tasks import Retrieval
from harness.records.results import Record

if TYPE_CHECKING:
    from harness.execution.prepared import CaseInputs, PreparedGroup
    from harness.spec.sweep import Case

__all__ = ["WHAT_AGREES", "check_task"]

WHAT_AGREES = {
    "pairs": "labels",
    "tagging": "word labels",
    "qa": "answer spans",
    "retrieval": "top-1 matches",
}


def _count(got: Any, ref: Any) -> tuple[int, int]:
    """(agreeing, compared) answers of one call."""
    if isinstance(got, list) and got and isinstance(got[0], np.ndarray):  # word labels
        pairs = [(np.asarray(g), np.asarray(r)) for g, r in zip(got, ref, strict=True)]
        return sum(int((g == r).sum()) for g, r in pairs), sum(g.size for g, _ in pairs)
    if isinstance(got, list):  # answer spans
        return sum(tuple(g) == tuple(r) for g, r in zip(got, ref, strict=True)), len(got)
    g, r = np.asarray(got), np.asarray(ref)
    return int((g == r).sum()), int(g.size)


def check_task(record: Record, case: Case, group: PreparedGroup, inputs: CaseInputs) -> None:
    task = inputs.task
    if task is None or group.ckpt.model is None or "task" not in record.workload:
        return
    model = group.ckpt.torch_model()

    def reference(batch: Any) -> np.ndarray:
        return np.asarray(model(batch.input_ids, batch.attention_mask).float().numpy())

    finish = task.finish
    with torch.inference_mode():
        if task.retrieval is not None:
            own = Retrieval(task.retrieval.pool, task.retrieval.size)
            own.set_pool(np.concatenate([reference(b) for b in task.retrieval.pool]))
            finish = [own.search for _ in task.batches]
        agree = total = 0
        for batch, call, done in zip(task.batches, inputs.calls, finish, strict=True):
            a, n = _count(call(), done(reference(batch)))
            agree, total = agree + a, total + n
    record.workload["task"] = record.workload["task"] | {
        "agreement": agree / total if total else 1.0,
        "agreement_what": f"{WHAT_AGREES[str(case.task)]} equal to eager float32's",
    }
