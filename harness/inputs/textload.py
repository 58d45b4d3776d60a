"""Real-text workloads per language, and the per-language token statistics behind them.

The same meaning costs a different number of tokens in each language, and batching pads every
sentence to the longest in its batch. Three padding policies make that cost visible:

* ``fixed``   — every batch padded to the case's max length (what a static-shape server does);
* ``longest`` — corpus order, each batch padded to its longest sentence;
* ``sorted``  — the case's sentences sorted by length first, then batched;
* ``bucket``  — the whole measured pool of the language sorted by length and cut into
  batches (length bucketing as a server does it), from which ``lang_batches`` batches spread
  evenly over the length distribution are measured.

Every real-text workload also carries its *no-padding ceiling*: for each batch, a batch of
the same sentences' real tokens at their mean length, with no padding at all. Timing those
gives the throughput the sentences would reach if padding cost nothing, so every record can
say what share of that ceiling its policy reaches.

A language code ``deu+jpn`` mixes languages round-robin inside each batch.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.inputs.corpus import Pairs, read_pairs
from harness.inputs.tokenization import TextTokenizer, get_tokenizer
from harness.inputs.workloads import BOS, EOS, Batch, padded_batch, synthetic_batch
from harness.records.types import Bucket, TokenizerInfo, Workload

if TYPE_CHECKING:
    from harness.checkpoints.load import Checkpoint
    from harness.spec.sweep import Case

__all__ = [
    "LanguageStats",
    "bucket_batches",
    "build_batches",
    "ceiling_batches",
    "fold_ids",
    "language_stats",
    "language_workload",
]


def fold_ids(ids: list[int], vocab: int) -> list[int]:
    """Keep ids inside a model's vocabulary (a tiny test model may have fewer than the
    tokenizer); identity for any real XLM-R vocabulary."""
    return [i if i < vocab else 4 + i % (vocab - 4) for i in ids]


def encode_with_specials(
    tok: TextTokenizer, text: str, max_len: int, vocab: int
) -> tuple[list[int], bool]:
    ids = tok.encode(text)
    truncated = len(ids) + 2 > max_len
    ids = ids[: max_len - 2]
    return [BOS, *fold_ids(ids, vocab), EOS], truncated


def mixed_sentences(pairs: list[Pairs]) -> list[str]:
    """Round-robin over languages so every batch holds all of them."""
    out: list[str] = []
    for row in zip(*(p.text for p in pairs), strict=False):
        out.extend(row)
    return out


def bucket_batches(
    rows: list[list[int]], batch_size: int, n_batches: int, choices: int = 1
) -> tuple[list[Batch], list[Bucket]]:
    """Length buckets over the whole pool: sort every row by length, cut into full batches,
    and keep ``n_batches`` of them spread evenly from the shortest to the longest. Returns the
    batches and, per batch, its bucket's boundaries and padding share."""
    ordered = sorted(rows, key=len)
    if len(ordered) < batch_size:
        ordered = [ordered[i % len(ordered)] for i in range(batch_size)]
    chunks = [
        ordered[i : i + batch_size] for i in range(0, len(ordered) - batch_size + 1, batch_size)
    ]
    # Evenly spread from the shortest bucket to the longest (repeats when there are fewer).
    picks = [int(p) for p in np.linspace(0, len(chunks) - 1, num=n_batches).round()]
    batches: list[Batch] = []
    buckets: list[Bucket] = []
    for p in picks:
        chunk = chunks[p]
        batch = padded_batch(chunk, max(len(r) for r in chunk), choices=choices)
        batches.append(batch)
        buckets.append(
            {
                "bucket": p,
                "of": len(chunks),
                "min_len": min(len(r) for r in chunk),
                "max_len": max(len(r) for r in chunk),
                "pad_share": 1 - batch.real_tokens / batch.positions,
            }
        )
    return batches, buckets


def ceiling_batches(batches: list[Batch], vocab: int) -> list[Batch]:
    """Each batch's real tokens at their mean length, unpadded: the no-padding ceiling."""
    out = []
    for i, b in enumerate(batches):
        choices = int(b.input_ids.shape[1]) if b.input_ids.dim() == 3 else 1
        mean_len = max(2, round(b.real_tokens / b.sequences))
        out.append(
            synthetic_batch(b.sequences // choices, mean_len, vocab, choices=choices, seed=1000 + i)
        )
    return out


def build_batches(
    rows: list[list[int]],
    batch_size: int,
    n_batches: int,
    policy: str,
    max_len: int,
    choices: int = 1,
) -> list[Batch]:
    """Deterministic batches from encoded rows (cycled if there are too few)."""
    need = batch_size * n_batches
    picked = [rows[i % len(rows)] for i in range(need)]
    if policy == "sorted":
        picked = sorted(picked, key=len)
    batches = []
    for b in range(n_batches):
        chunk = picked[b * batch_size : (b + 1) * batch_size]
        pad_to = max_len if policy == "fixed" else max(len(r) for r in chunk)
        batches.append(padded_batch(chunk, pad_to, choices=choices))
    return batches


def language_workload(
    case: Case, ckpt: Checkpoint, corpus: Path | None, cache_dir: Path
) -> tuple[list[Batch], TokenizerInfo, Workload]:
    """Batches for a language case, the tokenizer's identity, and the workload's facts."""
    if corpus is None or case.language is None:
        raise HarnessError("language cases need a corpus directory")
    n_batches = case.lang_batches
    pairs = [read_pairs(corpus, lang).split("measure") for lang in case.language.split("+")]
    tok = get_tokenizer(case.model.source, ckpt.path, corpus, cache_dir)
    sentences = mixed_sentences(pairs) if len(pairs) > 1 else list(pairs[0].text)
    encoded = [encode_with_specials(tok, s, case.seq_len, ckpt.arch.vocab) for s in sentences]
    rows = [e[0] for e in encoded]
    buckets: list[Bucket] = []
    if case.policy == "bucket":
        batches, buckets = bucket_batches(rows, case.batch_size, n_batches, case.model.choices)
    else:
        batches = build_batches(
            rows, case.batch_size, n_batches, str(case.policy), case.seq_len, case.model.choices
        )
    positions = sum(b.positions for b in batches)
    real = sum(b.real_tokens for b in batches)
    workload: Workload = {
        "kind": "tatoeba",
        "language": case.language,
        "policy": case.policy,
        "n_batches": len(batches),
        "sentences_available": len(sentences),
        "pad_share": 1 - real / positions,
        "truncated_share": float(np.mean([e[1] for e in encoded])),
        "tokens_per_sentence_mean": float(np.mean([len(r) for r in rows])),
        "real_tokens_by_batch": [b.real_tokens for b in batches],
        "padded_len_by_batch": [b.seq_len for b in batches],
    }
    if buckets:
        workload["buckets"] = buckets
    return batches, tok.info, workload


@dataclass(frozen=True)
class LanguageStats:
    language: str
    sentences: int
    tokens_mean: float
    tokens_p50: float
    tokens_p95: float
    tokens_max: int
    fertility_mean: float
    fertility_p50: float
    chars_per_token: float
    unk_share: float
    truncation_rate: float
    blank_skipped: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def language_stats(tok: TextTokenizer, corpus: Path, language: str, max_len: int) -> LanguageStats:
    """Token statistics of a language's measured sentences against their English sides.

    Counts exclude the two special tokens; fertility is tokens(lang)/tokens(eng) per pair;
    truncation counts sentences that would not fit ``max_len`` with ``<s>``/``</s>``.
    """
    full = read_pairs(corpus, language)
    pairs = full.split("measure")
    ids = [tok.encode(s) for s in pairs.text]
    eng = [tok.encode(s) for s in pairs.english]
    lengths = np.array([len(i) for i in ids], dtype=float)
    ratio = np.array([len(a) / max(len(b), 1) for a, b in zip(ids, eng, strict=True)])
    chars = sum(len(s) for s in pairs.text)
    unk = sum(sum(1 for t in i if t == tok.unk_id) for i in ids)
    total = int(lengths.sum())
    return LanguageStats(
        language=language,
        sentences=len(ids),
        tokens_mean=float(lengths.mean()),
        tokens_p50=float(np.percentile(lengths, 50)),
        tokens_p95=float(np.percentile(lengths, 95)),
        tokens_max=int(lengths.max()),
        fertility_mean=float(ratio.mean()),
        fertility_p50=float(np.median(ratio)),
        chars_per_token=chars / max(total, 1),
        unk_share=unk / max(total, 1),
        truncation_rate=float(np.mean(lengths + 2 > max_len)),
        blank_skipped=full.blank_skipped,
    )


def calibration_codes(corpus: Path, languages: str) -> list[str]:
    """``eng+de`` → ``["eng", "deu"]``: the calibration languages normalized (``eng`` is the
    English sides); unknown, repeated or empty ones raise."""
    from harness.inputs.corpus import available_languages, normalize_code

    available = available_languages(corpus)
    if not available:
        raise HarnessError(f"{corpus}: no Tatoeba language files to calibrate on")
    parts = languages.split("+")
    if any(not p.strip() for p in parts):
        raise HarnessError(f"calibration_languages {languages!r}: an empty language")
    codes = [
        "eng" if p.strip().lower() in ("eng", "en") else normalize_code(p.strip(), available)
        for p in parts
    ]
    if len(set(codes)) != len(codes):
        raise HarnessError(f"calibration_languages {languages!r}: a language appears twice")
    return codes


def _english_pool(corpus: Path) -> list[str]:
    """The English sides of every file's train half, interleaved across the files, each
    sentence once — and none that is in *any* file's measured half (Tatoeba's English
    sentences recur across files: the one file's train line is another's measured line)."""
    from harness.inputs.corpus import available_languages

    measured: set[str] = set()
    trains: list[tuple[str, ...]] = []
    for lang in available_languages(corpus):
        pairs = read_pairs(corpus, lang)
        measured.update(pairs.split("measure").english)
        trains.append(pairs.split("train").english)
    seen: set[str] = set()
    pool = []
    for row in itertools.zip_longest(*trains):
        for sentence in row:
            if sentence and sentence.strip() and sentence not in measured and sentence not in seen:
                seen.add(sentence)
                pool.append(sentence)
    return pool


def _language_pool(corpus: Path, code: str) -> list[str]:
    pairs = read_pairs(corpus, code)
    measured = set(pairs.split("measure").text)
    return list(
        dict.fromkeys(s for s in pairs.split("train").text if s.strip() and s not in measured)
    )


def calibration_batches(
    corpus: Path, languages: str, tok: TextTokenizer, vocab: int, max_len: int, n: int
) -> tuple[list[Batch], dict[str, Any]]:
    """``n`` sentences to calibrate a static int8 graph on, one per batch, from the *train*
    half of the corpus and never a sentence of any measured half (no measured sentence
    calibrates what it measures): ``eng`` is the English sides of every file, interleaved;
    any other code that language's own sentences; ``deu+tha`` takes them in turn, an equal
    share each while both last."""
    codes = calibration_codes(corpus, languages)
    pools = [_english_pool(corpus) if c == "eng" else _language_pool(corpus, c) for c in codes]
    # In turn across the languages; one that runs out drops out, the others go on.
    mixed: list[tuple[str, str]] = []
    for row in itertools.zip_longest(*pools):
        mixed.extend((c, s) for c, s in zip(codes, row, strict=True) if s is not None)
    mixed = mixed[:n]
    if not mixed:
        raise HarnessError(f"{corpus}: no sentences to calibrate on for {languages!r}")
    rows = [encode_with_specials(tok, s, max_len, vocab)[0] for _, s in mixed]
    batches = [padded_batch([row], len(row)) for row in rows]
    facts = {
        "languages": codes,
        "sentences": len(mixed),
        "by_language": {c: sum(1 for m, _ in mixed if m == c) for c in codes},
        "split": "train half (odd lines), no sentence of any measured half",
        # What was calibrated on, so a changed corpus is a different graph in the cache.
        "sha256": hashlib.sha256("\n".join(s for _, s in mixed).encode()).hexdigest(),
    }
    return batches, facts
