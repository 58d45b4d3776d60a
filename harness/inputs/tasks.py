"""XTREME task workloads built from a language's own real sentences (:mod:`harness.spec.tasks`).

No new corpus is needed: a task's inputs are made from the Tatoeba sentences of the language
(the measured half), so every language gets the same recipe:

* ``pairs`` — consecutive sentences ``(s0, s1), (s2, s3), ...`` as one input in XLM-R's pair
  encoding ``<s> A </s></s> B </s>`` (longest side truncated first);
* ``tagging`` — each sentence word by word (whitespace words; a script without spaces has a
  word per piece), the label of a word read at its first piece;
* ``qa`` — a sentence as the question, the sentences after it as the paragraph, until their
  English side reaches ``qa_context_chars`` (the same content in every language); the
  paragraph's tokens cut into windows of ``qa_max_len`` (question and specials included)
  starting ``doc_stride`` tokens apart, every window of a question in one call;
* ``retrieval`` — the English sides of ``retrieval_pool`` pairs as the candidates (encoded
  once, outside the timed unit, by the backend being measured), the language's sentences as
  queries; the search is an exact cosine over the pool.

Each call comes with its *finish*: what turns the model's output into the task's answer
(labels, word labels, the answer span over all windows, the nearest candidate). It runs inside
the timed unit, as a server runs it. Everything here is numpy on the model's output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from harness.errors import HarnessError
from harness.inputs.corpus import Pairs
from harness.inputs.textload import fold_ids
from harness.inputs.tokenization import TextTokenizer
from harness.inputs.workloads import BOS, EOS, Batch, padded_batch
from harness.records.types import TaskFacts, TokenizerInfo, Workload
from harness.spec.tasks import TaskSettings, task_of

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.spec.sweep import Case

__all__ = [
    "Retrieval",
    "TaskWorkload",
    "best_span",
    "build_task",
    "needed_sentences",
    "qa_windows",
    "task_case_workload",
]

#: A search over more candidates than this uses FAISS when it is installed (exact inner
#: product, IndexFlatIP); below it, and without FAISS, numpy's BLAS matrix product.
FAISS_FROM = 100_000


@dataclass
class Retrieval:
    """The candidate pool of a retrieval case and the search over it."""

    pool: list[Batch]
    size: int
    vectors: np.ndarray | None = None
    library: str = "numpy (exact cosine, BLAS matrix product)"
    index: Any = None

    def set_pool(self, vectors: np.ndarray) -> None:
        v = np.asarray(vectors, dtype=np.float32)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        if self.size >= FAISS_FROM:
            try:
                import faiss  # type: ignore[import-not-found]
            except ImportError:
                return
            self.index = faiss.IndexFlatIP(self.vectors.shape[1])
            self.index.add(self.vectors)
            self.library = "faiss IndexFlatIP (exact inner product)"

    def search(self, queries: np.ndarray) -> np.ndarray:
        """Index of each query's nearest candidate by cosine."""
        if self.vectors is None:
            raise RuntimeError("the pool was not encoded")
        q = np.asarray(queries, dtype=np.float32)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        if self.index is not None:
            return np.asarray(self.index.search(q, 1)[1][:, 0])
        return np.asarray(np.argmax(q @ self.vectors.T, axis=1))


@dataclass
class TaskWorkload:
    """A task case's calls: the batch each runs, how its output becomes the answer, and how
    many task units it serves; with the facts the record keeps."""

    batches: list[Batch]
    finish: list[Callable[[np.ndarray], Any]]
    units: list[int]
    facts: dict[str, Any] = field(default_factory=dict)
    retrieval: Retrieval | None = None


def needed_sentences(task: str, settings: TaskSettings) -> int:
    """The fewest measured sentences a language needs for ``task``'s inputs."""
    return {"pairs": 2, "tagging": 1, "qa": 2, "retrieval": settings.retrieval_pool}[task]


def _enc(tok: TextTokenizer, text: str, vocab: int) -> list[int]:
    return fold_ids(tok.encode(text), vocab)


def _pair_row(a: list[int], b: list[int], max_len: int) -> list[int]:
    """``<s> a </s></s> b </s>``, the longer side truncated first to fit ``max_len``."""
    a, b = list(a), list(b)
    while len(a) + len(b) + 4 > max_len:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return [BOS, *a, EOS, EOS, *b, EOS]


def _cycled(n: int, items: Sequence[Any]) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


def _pairs(
    tok: TextTokenizer, pairs: Pairs, vocab: int, max_len: int, b: int, n: int
) -> TaskWorkload:
    text = pairs.text
    couples = [(text[i], text[i + 1]) for i in range(0, len(text) - 1, 2)]
    rows = [
        _pair_row(_enc(tok, x, vocab), _enc(tok, y, vocab), max_len)
        for x, y in _cycled(b * n, couples)
    ]
    batches = [
        padded_batch(rows[i * b : (i + 1) * b], max(map(len, rows[i * b : (i + 1) * b])))
        for i in range(n)
    ]
    finish = [lambda out: np.argmax(out, axis=-1) for _ in batches]
    return TaskWorkload(
        batches, finish, [b] * n, {"tokens_per_unit": float(np.mean([len(r) for r in rows]))}
    )


def _tagged_row(
    tok: TextTokenizer, text: str, vocab: int, max_len: int
) -> tuple[list[int], list[int]]:
    """A sentence's ids and the position of each word's first piece."""
    words = text.split()
    if len(words) <= 1:  # a script written without spaces: every piece starts a word
        pieces = [[p] for p in _enc(tok, text, vocab)]
    else:
        pieces = [_enc(tok, w, vocab) for w in words]
    ids: list[int] = [BOS]
    firsts: list[int] = []
    for piece in pieces:
        if not piece:
            continue
        if len(ids) + len(piece) + 1 > max_len:
            break
        firsts.append(len(ids))
        ids.extend(piece)
    return [*ids, EOS], firsts


def _word_labels(firsts: list[list[int]]) -> Callable[[np.ndarray], list[np.ndarray]]:
    def finish(out: np.ndarray) -> list[np.ndarray]:
        labels = np.argmax(out, axis=-1)  # [B, S]
        return [labels[r, f] for r, f in enumerate(firsts)]

    return finish


def _tagging(
    tok: TextTokenizer, pairs: Pairs, vocab: int, max_len: int, b: int, n: int
) -> TaskWorkload:
    tagged = [_tagged_row(tok, s, vocab, max_len) for s in _cycled(b * n, pairs.text)]
    batches, finish = [], []
    for i in range(n):
        chunk = tagged[i * b : (i + 1) * b]
        batches.append(padded_batch([r for r, _ in chunk], max(len(r) for r, _ in chunk)))
        finish.append(_word_labels([f for _, f in chunk]))
    facts = {
        "tokens_per_unit": float(np.mean([len(r) for r, _ in tagged])),
        "words_per_unit": float(np.mean([len(f) for _, f in tagged])),
    }
    return TaskWorkload(batches, finish, [b] * n, facts)


def qa_windows(context: int, budget: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` token spans of a context of ``context`` tokens cut into windows of at
    most ``budget`` tokens whose starts are ``stride`` apart, the last one reaching the end."""
    if context <= budget:
        return [(0, context)]
    spans = []
    start = 0
    while True:
        end = min(start + budget, context)
        spans.append((start, end))
        if end == context:
            return spans
        start += stride


def best_span(
    start: np.ndarray, end: np.ndarray, lo: int, hi: int, max_len: int
) -> tuple[float, int, int]:
    """The highest ``start[i] + end[j]`` with ``lo <= i <= j < hi`` and ``j - i < max_len``."""
    s, e = start[lo:hi], end[lo:hi]
    # for each end j, the best start among the max_len positions up to j
    n = s.size
    if n == 0:
        return (-np.inf, lo, lo)
    running = np.full(n, -np.inf)
    arg = np.zeros(n, dtype=int)
    for k in range(min(max_len, n)):
        shifted = np.full(n, -np.inf)
        shifted[k:] = s[: n - k]
        better = shifted > running
        running = np.where(better, shifted, running)
        arg = np.where(better, np.arange(n) - k, arg)
    scores = running + e
    j = int(np.argmax(scores))
    return (float(scores[j]), lo + int(arg[j]), lo + j)


@dataclass(frozen=True)
class _Question:
    windows: list[list[int]]
    spans: list[tuple[int, int]]
    offset: int  # where the context starts in a window row
    context_tokens: int
    context_chars: int


def _questions(tok: TextTokenizer, pairs: Pairs, vocab: int, s: TaskSettings) -> list[_Question]:
    out = []
    i = 0
    text, english = pairs.text, pairs.english
    while i + 1 < len(text):
        question = _enc(tok, text[i], vocab)[: s.max_query_len]
        j, chars = i + 1, 0
        while j < len(text) and chars < s.qa_context_chars:
            chars += len(english[j]) + 1
            j += 1
        sep = "" if len(text[i + 1].split()) <= 1 and " " not in text[i + 1] else " "
        context_text = sep.join(text[i + 1 : j])
        context = _enc(tok, context_text, vocab)
        budget = s.qa_max_len - len(question) - 4
        spans = qa_windows(len(context), budget, s.doc_stride)
        windows = [[BOS, *question, EOS, EOS, *context[a:b], EOS] for a, b in spans]
        out.append(_Question(windows, spans, len(question) + 3, len(context), len(context_text)))
        i = j
    return out


def _answers(
    questions: list[_Question], max_answer: int
) -> Callable[[np.ndarray], list[tuple[int, int]]]:
    def finish(out: np.ndarray) -> list[tuple[int, int]]:
        answers = []
        row = 0
        for q in questions:
            best = (-np.inf, 0, 0)
            for w, (a, b) in enumerate(q.spans):
                logits = out[row + w]
                score, i, j = best_span(
                    logits[0], logits[1], q.offset, q.offset + (b - a), max_answer
                )
                if score > best[0]:
                    best = (score, a + i - q.offset, a + j - q.offset)
            answers.append((best[1], best[2]))
            row += len(q.spans)
        return answers

    return finish


def _qa(
    tok: TextTokenizer, pairs: Pairs, vocab: int, s: TaskSettings, b: int, n: int
) -> TaskWorkload:
    questions = _questions(tok, pairs, vocab, s)
    if not questions:
        raise HarnessError(
            f"{pairs.language}: too few sentences to build a question and its paragraph"
        )
    asked = _cycled(b * n, questions)
    batches, finish = [], []
    for i in range(n):
        chunk = asked[i * b : (i + 1) * b]
        rows = [w for q in chunk for w in q.windows]
        batches.append(padded_batch(rows, max(map(len, rows))))
        finish.append(_answers(chunk, s.max_answer_len))
    facts = {
        "forward_passes_per_unit": float(np.mean([len(q.windows) for q in asked])),
        "context_tokens_per_unit": float(np.mean([q.context_tokens for q in asked])),
        "context_chars_per_unit": float(np.mean([q.context_chars for q in asked])),
        "tokens_per_unit": float(np.mean([sum(len(w) for w in q.windows) for q in asked])),
        "questions_available": len(questions),
    }
    return TaskWorkload(batches, finish, [b] * n, facts)


def _retrieval(
    tok: TextTokenizer, pairs: Pairs, vocab: int, max_len: int, s: TaskSettings, b: int, n: int
) -> TaskWorkload:
    size = s.retrieval_pool
    if len(pairs.text) < size:
        raise HarnessError(
            f"{pairs.language}: retrieval needs {size} measured sentences for its candidate "
            f"pool, the corpus has {len(pairs.text)} (lower retrieval_pool)"
        )

    def row(text: str) -> list[int]:
        return [BOS, *_enc(tok, text, vocab)[: max_len - 2], EOS]

    candidates = [row(t) for t in pairs.english[:size]]
    pool = [
        padded_batch(candidates[i : i + 32], max(map(len, candidates[i : i + 32])))
        for i in range(0, size, 32)
    ]
    retrieval = Retrieval(pool, size)
    queries = [row(t) for t in _cycled(b * n, pairs.text[:size])]
    batches = [
        padded_batch(queries[i * b : (i + 1) * b], max(map(len, queries[i * b : (i + 1) * b])))
        for i in range(n)
    ]
    finish: list[Callable[[np.ndarray], Any]] = [retrieval.search for _ in batches]
    facts = {"tokens_per_unit": float(np.mean([len(r) for r in queries])), "pool_size": size}
    return TaskWorkload(batches, finish, [b] * n, facts, retrieval)


def build_task(
    task: str,
    tok: TextTokenizer,
    pairs: Pairs,
    vocab: int,
    *,
    batch_size: int,
    n_batches: int,
    max_len: int,
    settings: TaskSettings,
) -> TaskWorkload:
    """The calls of one task case (see the module docstring)."""
    task_of(task)
    need = needed_sentences(task, settings)
    if len(pairs.text) < need:
        raise HarnessError(
            f"{pairs.language}: the {task} task needs at least {need} measured sentences, "
            f"the corpus has {len(pairs.text)}"
        )
    if task == "pairs":
        wl = _pairs(tok, pairs, vocab, max_len, batch_size, n_batches)
    elif task == "tagging":
        wl = _tagging(tok, pairs, vocab, max_len, batch_size, n_batches)
    elif task == "qa":
        wl = _qa(tok, pairs, vocab, settings, batch_size, n_batches)
    else:
        wl = _retrieval(tok, pairs, vocab, max_len, settings, batch_size, n_batches)
    positions = sum(bt.positions for bt in wl.batches)
    real = sum(bt.real_tokens for bt in wl.batches)
    wl.facts |= {
        "task": task,
        "unit": task_of(task).unit,
        "units_per_call": float(np.mean(wl.units)),
        "forward_passes_per_unit": wl.facts.get("forward_passes_per_unit", 1.0),
        "real_tokens_per_unit": real / sum(wl.units),
        "pad_share": 1 - real / positions,
    }
    return wl


def task_case_workload(
    case: Case, ckpt: Checkpoint, corpus: Path | None, cache_dir: Path
) -> tuple[TaskWorkload, TokenizerInfo, Workload]:
    """A task case's workload from the corpus, the tokenizer's identity, and its facts."""
    from harness.inputs.corpus import read_pairs
    from harness.inputs.tokenization import get_tokenizer

    if corpus is None or case.language is None or case.task is None:
        raise HarnessError("task cases need a language and a corpus directory")
    if "+" in case.language:
        raise HarnessError("task cases take one language, not a mix")
    pairs = read_pairs(corpus, case.language).split("measure")
    tok = get_tokenizer(case.model.source, ckpt.path, corpus, cache_dir)
    wl = build_task(
        case.task,
        tok,
        pairs,
        ckpt.arch.vocab,
        batch_size=case.batch_size,
        n_batches=case.lang_batches,
        max_len=case.seq_len,
        settings=case.task_settings,
    )
    workload: Workload = {
        "kind": "tatoeba-task",
        "language": case.language,
        "policy": case.policy,
        "n_batches": len(wl.batches),
        "sentences_available": len(pairs.text),
        "pad_share": wl.facts["pad_share"],
        "real_tokens_by_batch": [b.real_tokens for b in wl.batches],
        "padded_len_by_batch": [b.seq_len for b in wl.batches],
        "task": cast("TaskFacts", dict(wl.facts)),
    }
    return wl, tok.info, workload
