"""A sweep checked before anything runs: every checkpoint, the corpus and its languages.

The one preflight of every measuring entry point — ``harness run``, ``compare`` (each
``-m``), ``check`` (the candidate, the baseline model, the suite's models), ``serve-bench``,
and the Python API (:mod:`harness`). It raises :class:`~harness.errors.HarnessError` with one
line for a bad input and creates nothing: the run directory comes after it passes.

* checkpoints: local directories loaded as XLM-R the way their owner meant, hub ids found in
  the cache or asked about within a few seconds (:func:`harness.checkpoints.load.preflight`);
* the corpus: found (``--corpus``, ``$HARNESS_TATOEBA``, the download cache), every language
  present, parallel and readable. Without a corpus, language cases are either an error or
  planned as ``skipped`` with the reason (``skip_missing_text``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.checkpoints.load import preflight
from harness.errors import HarnessError
from harness.inputs.corpus import HOW_TO_GET, XTREME_CODES, check_languages, find_corpus, read_pairs
from harness.spec.sweep import Case, SweepSpec, expand

__all__ = ["PreparedSweep", "check_models", "plan_sweep"]


@dataclass
class PreparedSweep:
    """A validated, expanded sweep; nothing has touched the output yet."""

    sweep: SweepSpec
    cases: list[Case]
    corpus: Path | None
    #: Planned cases that cannot run here, with the reason (language cases without a corpus).
    skipped: list[tuple[Case, str]]


def check_models(
    cases: list[Case], *, allow_pickle: bool = False, allow_custom_code: bool = False
) -> None:
    """Every checkpoint of ``cases`` loadable, or one line why not."""
    for spec in {c.model.name: c.model for c in cases}.values():
        preflight(spec, allow_pickle=allow_pickle, allow_custom_code=allow_custom_code)


def _without_corpus(sweep: SweepSpec) -> list[tuple[Case, str]]:
    codes = tuple(
        "+".join(XTREME_CODES.get(p.lower(), p.lower()) for p in code.split("+"))
        for code in sweep.languages
    )
    only_text = sweep.replace(languages=codes, synthetic=False)
    reason = f"no Tatoeba corpus here: {HOW_TO_GET}"
    return [(case, reason) for case in expand(only_text)]


def plan_sweep(
    sweep: SweepSpec,
    *,
    allow_pickle: bool = False,
    allow_custom_code: bool = False,
    skip_missing_text: bool = True,
    fetch_corpus: Callable[[tuple[str, ...]], Path | None] | None = None,
    models_dir: Path | None = None,
) -> PreparedSweep:
    """Check ``sweep`` and expand it into cases (see the module docstring). ``fetch_corpus``
    may download the sweep's languages when no corpus is found (``None``: it could not)."""
    corpus = None
    skipped: list[tuple[Case, str]] = []
    if sweep.languages:
        corpus = find_corpus(Path(sweep.corpus) if sweep.corpus else None)
        if corpus is None and fetch_corpus is not None:
            corpus = fetch_corpus(sweep.languages)
        if corpus is None:
            if not sweep.synthetic or not skip_missing_text:
                raise HarnessError(f"no Tatoeba corpus found for the language cases: {HOW_TO_GET}")
            skipped = _without_corpus(sweep)
            sweep = sweep.replace(languages=())
        else:
            languages = tuple(check_languages(corpus, sweep.languages))
            for code in {part for lang in languages for part in lang.split("+")}:
                read_pairs(corpus, code)  # present, parallel, UTF-8, not empty: or exit 2 now
            sweep = sweep.replace(languages=languages, corpus=str(corpus.resolve()))
    cases = expand(sweep, models_dir)
    check_models(cases, allow_pickle=allow_pickle, allow_custom_code=allow_custom_code)
    return PreparedSweep(sweep, cases, corpus, skipped)
