"""XTREME's Tatoeba: parallel sentences per language, read from the published file layout.

Layout (LASER's ``data/tatoeba/v1``): ``tatoeba.XXX-eng.XXX`` and ``tatoeba.XXX-eng.eng``, one
sentence per line, line *i* of one the translation of line *i* of the other. Codes are ISO 639-3;
XTREME's two-letter codes are accepted too. Nothing here depends on the script: lines are
UTF-8 text, whatever the direction or segmentation.

Each language's lines are split in two by position: even lines are measured, odd lines train
the surrogate tokenizer (:mod:`harness.inputs.tokenization`), so the tokenizer never saw what is timed.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cache import default_cache_dir
from harness.errors import HarnessError

__all__ = [
    "ENGLISH_SIDE",
    "UPSTREAM",
    "XTREME_LANGUAGES",
    "Pairs",
    "available_languages",
    "check_languages",
    "corpus_cache_dir",
    "fetch_tatoeba",
    "find_corpus",
    "normalize_code",
    "read_pairs",
    "resolve_corpus",
]

UPSTREAM = "https://raw.githubusercontent.com/facebookresearch/LASER/main/data/tatoeba/v1"

#: XTREME's two-letter code → the ISO 639-3 code Tatoeba files use.
XTREME_CODES = {
    "af": "afr",
    "ar": "ara",
    "bg": "bul",
    "bn": "ben",
    "de": "deu",
    "el": "ell",
    "es": "spa",
    "et": "est",
    "eu": "eus",
    "fa": "pes",
    "fi": "fin",
    "fr": "fra",
    "he": "heb",
    "hi": "hin",
    "hu": "hun",
    "id": "ind",
    "it": "ita",
    "ja": "jpn",
    "jv": "jav",
    "ka": "kat",
    "kk": "kaz",
    "ko": "kor",
    "ml": "mal",
    "mr": "mar",
    "nl": "nld",
    "pt": "por",
    "ru": "rus",
    "sw": "swh",
    "ta": "tam",
    "te": "tel",
    "th": "tha",
    "tl": "tgl",
    "tr": "tur",
    "ur": "urd",
    "vi": "vie",
    "zh": "cmn",
    "en": "eng",
}
XTREME_LANGUAGES = tuple(v for k, v in XTREME_CODES.items() if k != "en")
_FILE = re.compile(r"^tatoeba\.([a-z]{2,4})-eng\.\1$")


#: What to tell a user who has no corpus: every way to get one.
HOW_TO_GET = (
    "pass --corpus DIR, set HARNESS_TATOEBA=DIR, or download it once with "
    "`harness fetch-tatoeba` (needs internet)"
)


def corpus_cache_dir() -> Path:
    """Where ``harness fetch-tatoeba`` (and ``--fetch-corpus``) put the files."""
    return default_cache_dir() / "tatoeba"


def find_corpus(path: Path | None) -> Path | None:
    """The corpus directory: the one given, else ``$HARNESS_TATOEBA``, else the download
    cache; ``None`` when there is none. A directory the user named must exist."""
    if path is not None:
        if not path.is_dir():
            raise HarnessError(f"{path}: corpus directory not found")
        return path
    env = os.environ.get("HARNESS_TATOEBA")
    if env:
        if not Path(env).is_dir():
            raise HarnessError(f"HARNESS_TATOEBA={env}: corpus directory not found")
        return Path(env)
    cache = corpus_cache_dir()
    if cache.is_dir() and available_languages(cache):
        return cache
    return None


def resolve_corpus(path: Path | None) -> Path:
    """Like :func:`find_corpus`, but a missing corpus is an error that says how to get one."""
    found = find_corpus(path)
    if found is None:
        raise HarnessError(f"no Tatoeba corpus found: {HOW_TO_GET}")
    return found


def available_languages(corpus: Path) -> list[str]:
    langs = []
    for p in corpus.iterdir():
        m = _FILE.match(p.name)
        if m and (corpus / f"tatoeba.{m.group(1)}-eng.eng").is_file():
            langs.append(m.group(1))
    return sorted(langs)


#: A language code's suffix for the English side of its file (``deu@eng``).
ENGLISH_SIDE = "@eng"


def normalize_code(code: str, available: list[str]) -> str:
    """ISO 639-3 as in the file names; XTREME's 2-letter codes map to it; ``de@eng`` is the
    English side of the German file."""
    code = code.strip().lower()
    if code.endswith(ENGLISH_SIDE):
        return normalize_code(code[: -len(ENGLISH_SIDE)], available) + ENGLISH_SIDE
    mapped = XTREME_CODES.get(code, code)
    if mapped not in available:
        raise HarnessError(f"unknown language {code!r}; available: {', '.join(available)}")
    return mapped


def check_languages(corpus: Path, languages: tuple[str, ...] | list[str]) -> list[str]:
    """Normalize codes (``deu+jpn`` is a mixed-language workload); raise on unknown ones."""
    available = available_languages(corpus)
    out = []
    for code in languages:
        parts = [normalize_code(part, available) for part in code.split("+")]
        out.append("+".join(parts))
    return out


@dataclass(frozen=True)
class Pairs:
    """Aligned sentences of one language and their English translations."""

    language: str
    text: tuple[str, ...]
    english: tuple[str, ...]
    blank_skipped: int

    def split(self, part: str) -> Pairs:
        """``measure`` (even lines) or ``train`` (odd lines): disjoint by construction."""
        offset = {"measure": 0, "train": 1}[part]
        return Pairs(self.language, self.text[offset::2], self.english[offset::2], 0)


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path}: corpus file not found") from None
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text.splitlines()


def read_pairs(corpus: Path, language: str) -> Pairs:
    """Read one language's pairs. Blank lines on either side drop that pair (counted).
    ``deu@eng`` is the English side of the German file: the same content, in English."""
    if language.endswith(ENGLISH_SIDE):
        base = read_pairs(corpus, language[: -len(ENGLISH_SIDE)])
        return Pairs(language, base.english, base.english, base.blank_skipped)
    src = corpus / f"tatoeba.{language}-eng.{language}"
    eng = corpus / f"tatoeba.{language}-eng.eng"
    a, b = _read_lines(src), _read_lines(eng)
    if len(a) != len(b):
        raise HarnessError(f"{src}: {len(a)} lines but {eng.name} has {len(b)}; not parallel")
    kept = [(x.strip(), y.strip()) for x, y in zip(a, b, strict=True) if x.strip() and y.strip()]
    if not kept:
        raise HarnessError(f"{src}: no sentences (empty or only blank lines)")
    return Pairs(language, tuple(k[0] for k in kept), tuple(k[1] for k in kept), len(a) - len(kept))


def fetch_tatoeba(
    dest: Path,
    languages: list[str],
    base_url: str = UPSTREAM,
    on_file: Callable[[str], None] | None = None,
    timeout_s: float = 30.0,
) -> list[Path]:
    """Download the same files from upstream (LASER's repository) into ``dest``; cached.
    ``on_file`` is called with each file's name before it is fetched (a progress bar)."""
    written = []
    for lang in languages:
        for side in (lang, "eng"):
            name = f"tatoeba.{lang}-eng.{side}"
            target = dest / name
            if target.is_file():
                continue
            if on_file is not None:
                on_file(name)
            try:
                with urllib.request.urlopen(f"{base_url}/{name}", timeout=timeout_s) as response:
                    data = response.read()
            except OSError as exc:
                raise HarnessError(f"cannot download {name} from {base_url} ({exc})") from None
            dest.mkdir(parents=True, exist_ok=True)  # only once something arrived
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            written.append(target)
    return written
