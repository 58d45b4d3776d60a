"""A sweep expanded into explicit cases and checked before anything runs: every backend,
every checkpoint, the corpus and its languages.

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

import dataclasses
import itertools
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends import BACKENDS, check_backend
from harness.checkpoints.load import preflight
from harness.errors import HarnessError
from harness.inputs.corpus import (
    HOW_TO_GET,
    XTREME_CODES,
    XTREME_LANGUAGES,
    check_languages,
    find_corpus,
    read_pairs,
)
from harness.inputs.tasks import needed_sentences
from harness.records.env import cpu_isa
from harness.spec.config import ModelSpec, resolve_model
from harness.spec.sweep import Case, SweepSpec
from harness.spec.tasks import task_of

__all__ = ["PreparedSweep", "check_models", "check_onnx_exports", "expand", "plan_sweep"]


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
    if "xtreme" in sweep.languages:  # XTREME's languages, in a sweep file or from Python
        rest = tuple(lang for lang in sweep.languages if lang != "xtreme")
        sweep = sweep.replace(languages=XTREME_LANGUAGES + rest)
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
                measured = read_pairs(corpus, code).split("measure")  # or exit 2 now
                for task in sweep.tasks:
                    need = needed_sentences(task, sweep.task)
                    if len(measured.text) < need:
                        raise HarnessError(
                            f"{code}: the {task} task needs at least {need} measured sentences "
                            f"(the even lines of its file), the corpus has {len(measured.text)}"
                            + (" (lower --retrieval-pool)" if task == "retrieval" else "")
                        )
            if sweep.tasks and any("+" in lang for lang in languages):
                raise HarnessError("tasks take one language per case, not a mix like deu+jpn")
            sweep = sweep.replace(languages=languages, corpus=str(corpus.resolve()))
    sweep, corpus = _calibration_corpus(sweep, corpus)
    cases = expand(sweep, models_dir)
    check_models(cases, allow_pickle=allow_pickle, allow_custom_code=allow_custom_code)
    return PreparedSweep(sweep, cases, corpus, skipped)


def _calibration_corpus(sweep: SweepSpec, corpus: Path | None) -> tuple[SweepSpec, Path | None]:
    """A static int8 backend calibrates on real sentences: the corpus must be there and hold
    every calibration language (``eng``: the English sides), or one line now; the codes are
    written back normalized (``de`` → ``deu``), so what runs is what was checked."""
    calibrated = [b for b in sweep.backends if getattr(BACKENDS.get(b), "calibrated", False)]
    if not calibrated:
        return sweep, corpus
    if corpus is None:
        corpus = find_corpus(Path(sweep.corpus) if sweep.corpus else None)
    if corpus is None:
        raise HarnessError(
            f"{calibrated[0]} calibrates on real sentences and no Tatoeba corpus was "
            f"found: {HOW_TO_GET}"
        )
    options = normalized_calibration(sweep.backend_options, calibrated, corpus)
    return sweep.replace(backend_options=options, corpus=str(corpus.resolve())), corpus


def normalized_calibration(
    backend_options: dict[str, dict[str, str]], calibrated: list[str], corpus: Path
) -> dict[str, dict[str, str]]:
    """``backend_options`` with each calibrated backend's ``calibration_languages`` checked
    against ``corpus`` and normalized (unknown, repeated or empty codes: one line)."""
    from harness.inputs.textload import calibration_codes

    out = {b: dict(o) for b, o in backend_options.items()}
    for backend in calibrated:
        given = out.get(backend, {}).get("calibration_languages", "eng")
        if "@" in given:
            raise HarnessError(
                f"{backend} calibration_languages: {given!r} — eng is the English sides already"
            )
        try:
            codes = calibration_codes(corpus, given)
        except HarnessError as exc:
            raise HarnessError(f"{backend} calibration_languages: {exc}") from None
        if backend in out or given != "eng":
            out.setdefault(backend, {})["calibration_languages"] = "+".join(codes)
    return out


def check_onnx_exports(
    specs: Sequence[ModelSpec],
    backends: Sequence[str],
    options: Mapping[str, Mapping[str, str]],
) -> None:
    """An ONNX export directory (no PyTorch weights) runs only on the ONNX Runtime backends,
    without the options that apply to the harness's own exports; refused up front."""
    torch_only = [b for b in backends if not BACKENDS[b].takes_onnx_exports]
    for spec in (s for s in specs if s.is_onnx_export):
        if torch_only:
            raise HarnessError(
                f"{spec.name} is an ONNX export (no PyTorch weights): {', '.join(torch_only)} "
                "cannot run it; use "
                + ", ".join(b for b, cls in BACKENDS.items() if cls.takes_onnx_exports)
            )
        for backend, opts in options.items():
            if opts.get("io_binding") == "true" or opts.get("exporter") == "optimum":
                raise HarnessError(
                    f"{spec.name} is an ONNX export: {backend}'s io_binding and exporter "
                    "options are for checkpoints the harness exports itself"
                )


def expand(sweep: SweepSpec, models_dir: Path | None = None) -> list[Case]:
    """All cases of a sweep, grouped by (model, backend), cheapest shape first in a group."""
    specs = [resolve_model(ref, models_dir) for ref in sweep.models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise HarnessError(f"sweep: a model is listed twice ({', '.join(names)})")
    for backend in sweep.backends:
        check_backend(backend, sweep.device)
    check_onnx_exports(specs, sweep.backends, sweep.backend_options)
    cases: list[Case] = []
    common: dict[str, Any] = {"device": sweep.device, "threads": sweep.threads}
    for backend, options in sweep.backend_options.items():
        if backend not in sweep.backends:
            raise HarnessError(f"sweep: options given for {backend!r}, which is not in backends")
        check_backend(backend, sweep.device).check_options(options)
    x86 = platform.machine().lower() in ("x86_64", "amd64")  # the flags read are x86's
    if x86 and sweep.device == "cpu" and "bfloat16" in (sweep.dtype, *sweep.dtypes):
        isa = set(cpu_isa())
        if not isa & {"avx512_bf16", "amx_bf16"}:
            raise HarnessError(
                "bfloat16 on this CPU: it has no bf16 instructions (avx512_bf16 or amx_bf16; "
                f"it has {', '.join(sorted(isa)) or 'none of the int8/bf16 extensions'}), so "
                "torch would emulate it slowly; measure float32"
            )
    for backend, dtype in itertools.product(sweep.backends, sweep.dtypes or (sweep.dtype,)):
        allowed = check_backend(backend, sweep.device).dtypes_on(sweep.device)
        if dtype not in allowed:
            raise HarnessError(
                f"backend {backend!r} runs {', '.join(allowed)} on {sweep.device}, not {dtype} "
                "(use a torch backend for reduced precision)"
            )
    for spec, backend, dtype in itertools.product(
        specs, sweep.backends, sweep.dtypes or (sweep.dtype,)
    ):
        opts = tuple(sorted((k, str(v)) for k, v in sweep.backend_options.get(backend, {}).items()))
        common["options"] = opts
        common["dtype"] = dtype
        group: list[Case] = []
        if sweep.synthetic:
            for batch, seq in itertools.product(sweep.batch_sizes, sweep.seq_lens):
                _check_seq(spec, seq)
                group.append(Case(spec, backend, batch, seq, measure=sweep.measure, **common))
        languages = _with_english(sweep)
        for lang, policy, batch in itertools.product(
            languages if not sweep.tasks else (),
            sweep.policies,
            sweep.lang_batch_sizes or sweep.batch_sizes,
        ):
            _check_seq(spec, sweep.lang_max_len)
            group.append(
                Case(
                    spec,
                    backend,
                    batch,
                    sweep.lang_max_len,
                    language=lang,
                    policy=policy,
                    lang_batches=sweep.lang_batches,
                    measure=sweep.measure,
                    **common,
                )
            )
        group.sort(key=lambda c: (c.language is not None, c.batch_size * c.seq_len))
        cases.extend(group)
        for name in sweep.tasks:  # a task serves with its own head: a group of its own
            cases.extend(_task_cases(sweep, spec, backend, name, languages, common))
    return cases


def _with_english(sweep: SweepSpec) -> tuple[str, ...]:
    """The sweep's languages, each followed by its English side (``deu@eng``) when asked."""
    if not sweep.english:
        return sweep.languages
    out: list[str] = []
    for lang in sweep.languages:
        out += [lang, *([f"{lang}@eng"] if "+" not in lang and not lang.endswith("@eng") else [])]
    return tuple(dict.fromkeys(out))


def _task_cases(
    sweep: SweepSpec,
    spec: ModelSpec,
    backend: str,
    name: str,
    languages: tuple[str, ...],
    common: dict[str, Any],
) -> list[Case]:
    """One task's cases: the checkpoint served with the task's head (a given ONNX export
    has its head in the graph: it serves only the task of that head)."""
    task = task_of(name)
    if spec.head != task.head:
        if spec.is_onnx_export:
            raise HarnessError(
                f"{spec.name} is an ONNX export with a {spec.head} head: it cannot serve "
                f"the {name} task, which needs a {task.head} head"
            )
        spec = dataclasses.replace(spec, head=task.head)
    seq = sweep.task.qa_max_len if name == "qa" else sweep.lang_max_len
    _check_seq(spec, seq)
    cases = [
        Case(
            spec,
            backend,
            batch,
            seq,
            language=lang,
            policy="longest",
            lang_batches=sweep.lang_batches,
            measure=sweep.measure,
            task=name,
            task_settings=sweep.task,
            **common,
        )
        for lang, batch in itertools.product(languages, sweep.lang_batch_sizes or sweep.batch_sizes)
    ]
    return sorted(cases, key=lambda c: c.batch_size)


def _check_seq(spec: ModelSpec, seq_len: int) -> None:
    limit = spec.arch.max_seq_len
    if seq_len > limit:
        raise HarnessError(
            f"sequence length {seq_len} exceeds what {spec.name} allows ({limit}: "
            f"{spec.arch.max_positions} positions minus RoBERTa's offset of 2)"
        )
