"""Intermediate-task training, offline: a baseline checkpoint → a fine-tuned one.

Phang et al. (2020) found MNLI, SQuAD and HellaSwag the best English intermediate tasks for
XLM-R. We build English tasks of those three *shapes* from the English side of Tatoeba (the
train half, never the measured sentences) and take real AdamW gradient steps:

* ``pair-classification`` (MNLI-like, 3 labels): a sentence with (0) itself with words dropped,
  (1) itself with a negation inserted, (2) an unrelated sentence;
* ``span`` (SQuAD-like): a question made of a sentence's first words, a context of three
  sentences, the answer span is the sentence;
* ``multiple-choice`` (HellaSwag-like, 4 endings): a sentence's first half and four second
  halves, one of them its own.

The result has the baseline's architecture and different weights — exactly the situation the
harness must show to be equivalent in cost (or not).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.checkpoints.heads import build_hf_model
from harness.checkpoints.load import load_checkpoint
from harness.errors import HarnessError
from harness.inputs.corpus import read_pairs
from harness.inputs.textload import fold_ids
from harness.inputs.tokenization import SURROGATE_FILE, TextTokenizer, get_tokenizer
from harness.inputs.workloads import BOS, EOS, padded_batch
from harness.spec.config import ModelSpec

__all__ = ["TASKS", "TrainSpec", "train_intermediate"]

TASKS = {
    "pair-classification": "sequence-classification",
    "span": "question-answering",
    "multiple-choice": "multiple-choice",
}


@dataclass(frozen=True, slots=True)
class TrainSpec:
    task: str = "pair-classification"
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-5
    max_len: int = 64
    seed: int = 0
    corpus_language: str = "deu"  # whose English side (train half) provides the text

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise HarnessError(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.steps < 1 or self.batch_size < 1 or self.max_len < 8 or self.lr <= 0:
            raise HarnessError("steps and batch size must be >= 1, max_len >= 8, lr > 0")


def _pack(a: list[int], b: list[int] | None, max_len: int) -> list[int]:
    if b is None:
        return [BOS, *a[: max_len - 2], EOS]
    room = max_len - 4
    a, b = a[: room // 2], b[: room - min(len(a), room // 2)]
    return [BOS, *a, EOS, EOS, *b, EOS]  # XLM-R's pair format: <s> A </s></s> B </s>


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = padded_batch(rows, max(len(r) for r in rows))
    return batch.input_ids, batch.attention_mask


def make_batch(
    task: str, sents: list[list[int]], rng: random.Random, size: int, max_len: int
) -> dict[str, torch.Tensor]:
    """One training batch of the task's shape from tokenized English sentences."""
    pick = [sents[rng.randrange(len(sents))] for _ in range(size)]
    if task == "pair-classification":
        rows, labels = [], []
        for s in pick:
            label = rng.randrange(3)
            if label == 0:
                other = [t for t in s if rng.random() > 0.2] or s[:1]
            elif label == 1:
                cut = rng.randrange(len(s) + 1)
                other = [*s[:cut], 7, 8, *s[cut:]]  # a fixed 'negation' marker pair
            else:
                other = sents[rng.randrange(len(sents))]
            rows.append(_pack(s, other, max_len))
            labels.append(label)
        ids, mask = _pad(rows)
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels)}
    if task == "span":
        rows, starts, ends = [], [], []
        for s in pick:
            others = [sents[rng.randrange(len(sents))] for _ in range(2)]
            pos = rng.randrange(3)
            parts = [*others[:pos], s, *others[pos:]]
            question = s[: max(1, min(4, len(s)))]
            context: list[int] = []
            for p in parts:
                if p is s:
                    start = len(context)
                context += p
            room = max_len - len(question) - 4
            context = context[:room]
            a0 = min(start, len(context) - 1)
            a1 = min(start + len(s) - 1, len(context) - 1)
            offset = len(question) + 3
            rows.append([BOS, *question, EOS, EOS, *context, EOS])
            starts.append(offset + a0)
            ends.append(offset + a1)
        ids, mask = _pad(rows)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "start_positions": torch.tensor(starts),
            "end_positions": torch.tensor(ends),
        }
    # multiple choice: 4 endings, one of them the sentence's own second half
    rows4: list[list[int]] = []
    labels = []
    for s in pick:
        half = max(1, len(s) // 2)
        endings = [s[half:] or s[-1:]] + [
            (o := sents[rng.randrange(len(sents))])[len(o) // 2 :] or o[-1:] for _ in range(3)
        ]
        order = list(range(4))
        rng.shuffle(order)
        rows4.extend(_pack(s[:half], endings[k], max_len) for k in order)
        labels.append(order.index(0))
    ids, mask = _pad(rows4)
    return {
        "input_ids": ids.view(size, 4, -1),
        "attention_mask": mask.view(size, 4, -1),
        "labels": torch.tensor(labels),
    }


def _english(tok: TextTokenizer, corpus: Path, language: str, vocab: int) -> list[list[int]]:
    train = read_pairs(corpus, language).split("train")
    sents = [fold_ids(tok.encode(s), vocab) for s in train.english]
    return [s for s in sents if s]


def train_intermediate(
    baseline: ModelSpec,
    out: Path,
    spec: TrainSpec,
    corpus: Path,
    cache_dir: Path,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``baseline`` on ``spec.task``; save a loadable checkpoint directory at ``out``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HarnessError(f"{out}: output directory exists and is not empty")
    parent = next((p for p in out.resolve().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise HarnessError(f"{out}: cannot be created ({parent} is not a writable directory)")
    from harness.checkpoints.load import preflight

    preflight(baseline, allow_pickle=allow_pickle)  # one line, before minutes of loading
    torch.manual_seed(spec.seed)
    base = load_checkpoint(baseline, cache_dir, allow_pickle=allow_pickle)
    head = TASKS[spec.task]
    from harness.checkpoints.load import xlmr_config

    config = xlmr_config(
        ModelSpec(name=baseline.name, source="random-init", head=head, arch=base.arch, num_labels=3)
    )
    model: Any = build_hf_model(head, config)
    encoder_state = base.torch_model().model.state_dict()
    missing = model.roberta.load_state_dict(encoder_state, strict=False)
    # The multiple-choice head pools through RoBERTa's pooler, which a mean-pooling encoder
    # baseline does not have: it starts fresh and is trained like the classifier.
    lacking = [k for k in missing.missing_keys if not k.startswith("pooler.")]
    if lacking:
        raise HarnessError(f"baseline lacks encoder weights: {lacking[:3]}")
    tok = get_tokenizer(baseline.source, base.path, corpus, cache_dir)
    sents = _english(tok, corpus, spec.corpus_language, base.arch.vocab)
    rng = random.Random(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    model.train()
    log: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(spec.steps):
        batch = make_batch(spec.task, sents, rng, spec.batch_size, spec.max_len)
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log.append({"step": step + 1, "loss": float(loss.detach())})
    model.eval()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    spec_dict = {
        "head": head,
        "name": out.name,
        "baseline": baseline.to_dict(),
        "tokenizer": tok.info,
    }
    (tmp / "harness_spec.json").write_text(json.dumps(spec_dict, indent=2))
    if tok.kind == "surrogate" and tok.path is not None:
        shutil.copy(tok.path, tmp / SURROGATE_FILE)
    summary = {
        "task": spec.task,
        "head": head,
        "train": asdict(spec),
        "steps": spec.steps,
        "seconds": time.perf_counter() - start,
        "baseline_sha256": base.weights.sha256,
        "tokenizer": tok.info,
        "first_loss": sum(r["loss"] for r in log[:10]) / min(10, len(log)),
        "last_loss": sum(r["loss"] for r in log[-10:]) / min(10, len(log)),
        "log": log,
    }
    (tmp / "training_log.json").write_text(json.dumps(summary, indent=2))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return summary
