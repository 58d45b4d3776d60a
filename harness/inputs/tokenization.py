"""Tokenizers for real-text workloads: the checkpoint's own, or a surrogate we train.

XLM-R's SentencePiece model cannot be obtained everywhere (not here, for one). Rather than
guess lengths, the harness then trains a surrogate of the same kind — a SentencePiece
*unigram* model — on the ``train`` half of every Tatoeba language (never the sentences that
are measured). Its special ids match XLM-R's (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3),
it is deterministic (one thread, fixed input order), and its name and hash go into every
record, because its token counts per language are not XLM-R's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cache import seal_entry, usable
from harness.errors import HarnessError
from harness.inputs.corpus import available_languages, read_pairs
from harness.records.types import TokenizerInfo

__all__ = ["TextTokenizer", "checkpoint_tokenizer", "get_tokenizer", "train_surrogate"]

SURROGATE_VOCAB = 16000
SURROGATE_FILE = "surrogate.spm.model"
_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "tokenizer_config.json")


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TextTokenizer:
    """Text → ids without special tokens; ``info`` is what records carry."""

    encoder: Any
    kind: str
    name: str
    sha256: str
    unk_id: int
    vocab_size: int
    info_extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def encode(self, text: str) -> list[int]:
        if self.kind == "surrogate":
            return list(self.encoder.encode(text, out_type=int))
        return list(self.encoder.encode(text, add_special_tokens=False))

    @property
    def info(self) -> TokenizerInfo:
        info: TokenizerInfo = {
            "kind": self.kind,
            "name": self.name,
            "sha256": self.sha256,
            "vocab_size": self.vocab_size,
        }
        if "trained_on" in self.info_extra:
            info["trained_on"] = str(self.info_extra["trained_on"])
        return info


def _training_text(corpus: Path) -> str:
    lines: list[str] = []
    english: dict[str, None] = {}
    for lang in available_languages(corpus):
        try:
            train = read_pairs(corpus, lang).split("train")
        except HarnessError:
            continue  # a broken file is reported when that language is measured
        lines.extend(train.text)
        english.update(dict.fromkeys(train.english))
    lines.extend(english)
    return "\n".join(lines) + "\n"


def train_surrogate(
    corpus: Path, cache_dir: Path, vocab_size: int = SURROGATE_VOCAB
) -> TextTokenizer:
    """Train (once, cached by the training text's hash) the surrogate unigram tokenizer."""
    import sentencepiece as spm

    text = _training_text(corpus)
    if not text.strip():
        raise HarnessError(f"{corpus}: no sentences to train the surrogate tokenizer on")
    key = hashlib.sha256(f"unigram:{vocab_size}:cov1.0:".encode() + text.encode()).hexdigest()[:12]
    name = f"surrogate-unigram-{vocab_size}-{key}"
    folder = cache_dir / "tokenizers"
    model = folder / f"{name}.model"
    if not usable(model, [model], "surrogate tokenizer"):
        folder.mkdir(parents=True, exist_ok=True)
        # Sentences from an iterator and the model to memory: no file paths end up inside the
        # model proto, so the same text always gives byte-identical models (and hashes).
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text.splitlines()),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            bos_id=0,
            pad_id=1,
            eos_id=2,
            unk_id=3,
            hard_vocab_limit=False,
            num_threads=1,
            shuffle_input_sentence=False,
            input_sentence_size=0,
            minloglevel=2,
        )
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        os.replace(tmp, model)
        seal_entry(model)
    return load_surrogate(model, name)


def load_surrogate(model: Path, name: str) -> TextTokenizer:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    return TextTokenizer(
        sp,
        "surrogate",
        name,
        _sha256_file(model),
        sp.unk_id(),
        sp.get_piece_size(),
        {"trained_on": "odd lines of every Tatoeba language"},
        path=model,
    )


def checkpoint_tokenizer(path_or_id: str) -> TextTokenizer | None:
    """The checkpoint's own tokenizer if it ships one (``None`` otherwise or offline)."""
    local = Path(path_or_id)
    if local.is_dir() and not any((local / f).is_file() for f in _TOKENIZER_FILES):
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=False)
    except Exception:
        return None
    files = (
        sorted(p for p in local.iterdir() if p.name in _TOKENIZER_FILES) if local.is_dir() else []
    )
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest() if files else ""
    return TextTokenizer(
        tok,
        "checkpoint",
        f"{type(tok).__name__}({path_or_id})",
        digest,
        int(tok.unk_token_id if tok.unk_token_id is not None else -1),
        len(tok),
    )


def get_tokenizer(source: str, path: Path | None, corpus: Path, cache_dir: Path) -> TextTokenizer:
    """The checkpoint's own tokenizer; the surrogate it was trained with (``harness
    train-intermediate`` saves it beside the weights); else the surrogate for this corpus."""
    if path is not None and (path / SURROGATE_FILE).is_file():
        meta = path / "harness_spec.json"
        name = (
            json.loads(meta.read_text()).get("tokenizer", {}).get("name")
            if meta.is_file()
            else None
        )
        return load_surrogate(path / SURROGATE_FILE, name or f"surrogate({path.name})")
    own = checkpoint_tokenizer(str(path) if path else source) if path or "/" in source else None
    return own or train_surrogate(corpus, cache_dir)
