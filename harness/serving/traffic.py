"""Real traffic per language: the queries a serving scenario draws from.

A traffic spec is one language (``deu``), or a weighted mixture (``deu+jpn+tha`` is equal
shares, ``deu:2+jpn:1`` two German queries per Japanese one). Queries are the corpus's
measured half (the same sentences the closed-loop language cases use), tokenized by the
checkpoint's tokenizer exactly as there (``<s> … </s>``, truncated at ``max_len``).

Task traffic (``--tasks``) makes each query one XTREME task unit, built as the closed-loop task
cases build them (:mod:`harness.inputs.tasks`): a sentence pair, a sentence to tag, a question
with all the windows of its paragraph, a query to retrieve. A query is then several rows (a
question's windows travel together in one batch) and is answered — the span over its windows,
the word labels, the nearest candidate — before it completes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.inputs.corpus import available_languages, normalize_code, read_pairs
from harness.inputs.textload import encode_with_specials
from harness.inputs.tokenization import TextTokenizer
from harness.records.types import Workload

if TYPE_CHECKING:
    from harness.inputs.tasks import Retrieval
    from harness.spec.tasks import TaskSettings

__all__ = [
    "TaskUnit",
    "Traffic",
    "build_task_traffic",
    "build_traffic",
    "parse_mix",
    "traffic_name",
]

#: Task units in a task traffic's pool (distinct ones, cycled when the corpus has fewer).
TASK_POOL = 512

#: Queries in a mixture's pool (LoadGen draws from it uniformly).
MIX_POOL = 2048


def parse_mix(spec: str, corpus: Path) -> tuple[tuple[str, float], ...]:
    """``deu:2+jpn`` → ``(("deu", 2/3), ("jpn", 1/3))``, codes normalized; raises on bad input."""
    available = available_languages(corpus)
    parts: list[tuple[str, float]] = []
    for part in spec.split("+"):
        code, _, weight = part.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise HarnessError(f"traffic {spec!r}: weight {weight!r} is not a number") from None
        if not w > 0:
            raise HarnessError(f"traffic {spec!r}: weights must be > 0")
        parts.append((normalize_code(code, available), w))
    if len({c for c, _ in parts}) != len(parts):
        raise HarnessError(f"traffic {spec!r}: a language appears twice")
    total = sum(w for _, w in parts)
    return tuple((c, w / total) for c, w in parts)


def traffic_name(spec: str, corpus: Path) -> str:
    """The canonical name of a traffic spec: ``de`` → ``deu``, ``deu:2+jpn`` →
    ``deu:0.667+jpn:0.333`` (what case ids and records say)."""
    shares = parse_mix(spec, corpus)
    return _name(shares)


def _name(shares: tuple[tuple[str, float], ...]) -> str:
    return "+".join(c if len(shares) == 1 else f"{c}:{w:.3g}" for c, w in shares)


@dataclass(frozen=True)
class TaskUnit:
    """One task query: its rows (a question's windows; one row otherwise) and what turns
    their outputs into the answer."""

    rows: list[list[int]]
    finish: Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Traffic:
    name: str
    shares: tuple[tuple[str, float], ...]
    rows: list[list[int]] = field(repr=False)
    truncated_share: float
    #: Task traffic: one unit per query (``rows`` then holds each unit's longest row).
    units: list[TaskUnit] = field(default_factory=list, repr=False)
    task: dict[str, Any] = field(default_factory=dict)
    retrieval: Retrieval | None = field(default=None, repr=False)

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.rows]

    def facts(self) -> Workload:
        lengths = np.array(self.lengths)
        out: Workload = {
            "traffic": self.name,
            "shares": dict(self.shares),
            "queries_in_pool": len(self.rows),
            "tokens_mean": float(lengths.mean()),
            "tokens_p50": float(np.percentile(lengths, 50)),
            "tokens_p90": float(np.percentile(lengths, 90)),
            "tokens_max": int(lengths.max()),
            "truncated_share": self.truncated_share,
        }
        if self.task:
            out["task"] = self.task  # type: ignore[typeddict-item]
        return out


def build_traffic(
    spec: str, corpus: Path, tok: TextTokenizer, max_len: int, vocab: int, seed: int = 0
) -> Traffic:
    shares = parse_mix(spec, corpus)
    encoded = {
        code: [
            encode_with_specials(tok, s, max_len, vocab)
            for s in read_pairs(corpus, code).split("measure").text
        ]
        for code, _ in shares
    }
    if len(shares) == 1:
        picked = encoded[shares[0][0]]
    else:
        rng = np.random.default_rng(seed)
        codes = rng.choice(len(shares), size=MIX_POOL, p=[w for _, w in shares])
        cursors = dict.fromkeys(encoded, 0)
        picked = []
        for i in codes:
            code = shares[int(i)][0]
            rows = encoded[code]
            picked.append(rows[cursors[code] % len(rows)])
            cursors[code] += 1
    return Traffic(
        name=_name(shares),
        shares=shares,
        rows=[p[0] for p in picked],
        truncated_share=float(np.mean([p[1] for p in picked])),
    )


def build_task_traffic(
    task: str,
    spec: str,
    corpus: Path,
    tok: TextTokenizer,
    max_len: int,
    vocab: int,
    settings: TaskSettings,
) -> Traffic:
    """One language's task units as queries (see the module docstring); a mixture is refused,
    as for task cases."""
    from harness.inputs.tasks import build_task

    shares = parse_mix(spec, corpus)
    if len(shares) != 1:
        raise HarnessError(f"traffic {spec!r}: task traffic takes one language, not a mix")
    code = shares[0][0]
    pairs = read_pairs(corpus, code).split("measure")
    wl = build_task(
        task,
        tok,
        pairs,
        vocab,
        batch_size=1,
        n_batches=TASK_POOL,
        max_len=settings.qa_max_len if task == "qa" else max_len,
        settings=settings,
    )
    units = []
    for batch, finish in zip(wl.batches, wl.finish, strict=True):
        ids, mask = batch.input_ids, batch.attention_mask
        rows = [ids[r, : int(mask[r].sum())].tolist() for r in range(ids.shape[0])]
        units.append(TaskUnit(rows, finish))
    facts = {k: v for k, v in wl.facts.items() if k != "units_per_call"}
    longest = [max(u.rows, key=len) for u in units]
    # A question's paragraph is windowed, never cut; the other units are cut at max_len.
    cut = 0.0 if task == "qa" else float(np.mean([len(r) >= max_len for r in longest]))
    return Traffic(
        name=code,
        shares=shares,
        rows=longest,
        truncated_share=cut,
        units=units,
        task=facts,
        retrieval=wl.retrieval,
    )
