"""XTREME's task shapes as workloads: what one task unit is, the head it serves with, and
the settings that shape its inputs.

XTREME's target tasks do not serve single sentences:

* ``pairs`` (XNLI, PAWS-X): two sentences as one input, a sequence-classification head; the
  unit is a pair classified;
* ``tagging`` (UD-POS, PANX-NER): a sentence through a token-classification head, one label
  per word taken at the word's first piece; the unit is a sentence tagged;
* ``qa`` (XQuAD, MLQA, TyDiQA-GoldP): a question against a paragraph cut into overlapping
  windows of ``qa_max_len`` tokens that start ``doc_stride`` tokens apart (the usual
  fine-tuning scripts' 384 and 128), a span head, and the answer chosen over all windows; the
  unit is a question answered, however many windows (forward passes) its paragraph needs;
* ``retrieval`` (BUCC, Tatoeba): a sentence encoded (mean-pooled) and its nearest English
  sentence found by cosine among ``retrieval_pool`` candidates; the unit is a query retrieved.

A language that tokenizes into more pieces makes a QA paragraph spill into more windows: the
cost of a question then differs by language in forward passes, not only in tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import HarnessError

__all__ = ["TASKS", "Task", "TaskSettings", "task_of"]


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    head: str
    unit: str
    like: str


TASKS: dict[str, Task] = {
    "pairs": Task("pairs", "sequence-classification", "pair classified", "XNLI, PAWS-X"),
    "tagging": Task("tagging", "token-classification", "sentence tagged", "UD-POS, PANX-NER"),
    "qa": Task("qa", "question-answering", "question answered", "XQuAD, MLQA, TyDiQA"),
    "retrieval": Task("retrieval", "encoder", "query retrieved", "BUCC, Tatoeba"),
}


def task_of(name: str) -> Task:
    task = TASKS.get(name)
    if task is None:
        raise HarnessError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return task


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """How task inputs are built (the defaults are XTREME's usual fine-tuning settings)."""

    #: QA window length in tokens, question and specials included.
    qa_max_len: int = 384
    #: QA: tokens between the starts of consecutive windows (windows overlap by the rest).
    doc_stride: int = 128
    #: QA: the question's tokens at most.
    max_query_len: int = 64
    #: QA: a paragraph is consecutive sentences until their English side reaches this many
    #: characters — the same content in every language; ~the mean length of an XQuAD
    #: paragraph's English context (SQuAD v1.1 dev paragraphs average ~750 characters).
    qa_context_chars: int = 750
    #: QA: the longest answer span considered, in tokens.
    max_answer_len: int = 30
    #: Retrieval: English candidates each query is searched among (the measured half of a
    #: Tatoeba file holds 500 pairs; XTREME searches 1000).
    retrieval_pool: int = 500

    def __post_init__(self) -> None:
        for key in ("qa_max_len", "doc_stride", "max_query_len", "qa_context_chars"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise HarnessError(
                    f"task settings: {key} must be a positive integer, got {value!r}"
                )
        if not isinstance(self.max_answer_len, int) or self.max_answer_len <= 0:
            raise HarnessError("task settings: max_answer_len must be a positive integer")
        if not isinstance(self.retrieval_pool, int) or self.retrieval_pool < 2:
            raise HarnessError("task settings: retrieval_pool must be an integer >= 2")
        if self.doc_stride >= self.qa_max_len:
            raise HarnessError(
                f"task settings: doc_stride ({self.doc_stride}) must be below qa_max_len "
                f"({self.qa_max_len}), or windows would leave context tokens out"
            )
        if self.max_query_len + 4 + self.doc_stride > self.qa_max_len:
            raise HarnessError(
                f"task settings: a window of {self.qa_max_len} tokens holds the question "
                f"({self.max_query_len}), 4 special tokens and at most "
                f"{self.qa_max_len - self.max_query_len - 4} context tokens: doc_stride "
                f"({self.doc_stride}) must not exceed that"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "task") -> TaskSettings:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HarnessError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)
