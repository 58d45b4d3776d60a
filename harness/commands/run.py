"""``harness run``: expand a sweep, measure it into a run directory, print and write the report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..cli import DEFAULT_OUT, default_cache, ints, make_console, progress_bar, words
from ..errors import EXIT_OK, HarnessError
from ..sweep import Case, SweepSpec

__all__ = ["add_sweep_args", "prepare_sweep", "register"]


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sweep", type=Path, help="sweep TOML (e.g. bench/default.toml)")
    p.add_argument(
        "-m",
        "--model",
        action="append",
        dest="models",
        help="built-in spec name, spec .toml, local checkpoint dir or hub id (repeatable)",
    )
    p.add_argument(
        "-b",
        "--backend",
        action="append",
        dest="backends",
        help="eager, torchscript, onnxruntime, onnxruntime-fused, ... (repeatable)",
    )
    p.add_argument("--batch-sizes", type=ints, help="e.g. 1,8,32")
    p.add_argument("--seq-lens", type=ints, help="e.g. 32,128,512")
    p.add_argument("--threads", type=int, help="intra-op threads for torch and ORT")
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--dtype", choices=("float32", "tf32", "bfloat16", "float16"))
    p.add_argument(
        "--languages",
        type=words,
        help="Tatoeba languages (ISO 639-3 or XTREME codes; deu+jpn mixes), or 'xtreme'",
    )
    p.add_argument("--policies", type=words, help="padding policies: fixed,longest,sorted")
    p.add_argument(
        "--lang-max-len", type=int, help="max tokens per sentence (truncation, fixed padding)"
    )
    p.add_argument("--no-synthetic", action="store_true", help="only real-text language cases")
    p.add_argument(
        "--corpus", type=Path, help="Tatoeba directory (default: ../shared/corpora/tatoeba)"
    )
    p.add_argument("--max-time", type=float, help="time budget per case, seconds")
    p.add_argument("--repeats", type=int, help="run the whole sweep this many times")
    p.add_argument("--target-ci", type=float, help="stop when the median's 95%% CI is within this")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="built models, exports, tokenizers (default $HARNESS_CACHE or ~/.cache/xlmr-harness)",
    )
    p.add_argument("--allow-pickle", action="store_true", help="trust pickle (.bin/.pt) weights")
    p.add_argument(
        "--backend-option",
        action="append",
        metavar="BACKEND.KEY=VALUE",
        help="e.g. onnxruntime.graph_optimization_level=basic (repeatable)",
    )


def _measure(sweep: SweepSpec, args: argparse.Namespace) -> Any:
    """The sweep's measurement spec with the CLI's overrides (validated again on creation)."""
    changes = {"target_rel_ci": args.target_ci, "max_time_s": args.max_time}
    return dataclasses.replace(sweep.measure, **{k: v for k, v in changes.items() if v is not None})


def _backend_options(
    items: list[str] | None, base: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]] | None:
    if not items:
        return None
    out = {k: dict(v) for k, v in base.items()}
    for item in items:
        target, _, value = item.partition("=")
        backend, _, key = target.partition(".")
        if not backend or not key or not value:
            raise HarnessError(f"--backend-option expects BACKEND.KEY=VALUE, got {item!r}")
        out.setdefault(backend, {})[key] = value
    return out


def prepare_sweep(args: argparse.Namespace) -> tuple[SweepSpec, list[Case], Path | None]:
    """Sweep from TOML + flags, validated and expanded; nothing touches the output yet."""
    from ..checkpoints import preflight
    from ..corpus import XTREME_LANGUAGES, check_languages, resolve_corpus
    from ..sweep import expand, load_sweep

    sweep = load_sweep(args.sweep) if args.sweep else SweepSpec(name="cli")
    languages = args.languages
    if languages == ("xtreme",):
        languages = XTREME_LANGUAGES
    isolate = (
        True
        if getattr(args, "isolate", None)
        else (False if getattr(args, "inline", False) else None)
    )
    sweep = sweep.replace(
        models=tuple(args.models) if args.models else None,
        backends=tuple(args.backends) if args.backends else None,
        batch_sizes=args.batch_sizes,
        seq_lens=args.seq_lens,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        languages=languages,
        policies=args.policies,
        lang_max_len=args.lang_max_len,
        repeats=args.repeats,
        synthetic=False if args.no_synthetic else None,
        corpus=str(args.corpus) if args.corpus else None,
        isolate=isolate,
        measure=_measure(sweep, args),
        backend_options=_backend_options(args.backend_option, sweep.backend_options),
    )
    corpus = None
    if sweep.languages:
        corpus = resolve_corpus(Path(sweep.corpus) if sweep.corpus else None)
        sweep = sweep.replace(languages=tuple(check_languages(corpus, sweep.languages)))
    cases = expand(sweep)
    for spec in {c.model.name: c.model for c in cases}.values():
        preflight(spec)
    return sweep, cases, corpus


def write_language_stats(run_dir: Path, cases: list[Case], corpus: Path, cache_dir: Path) -> None:
    """Token statistics of the run's languages, with the tokenizer of its first checkpoint."""
    import json

    from ..store import write_atomic
    from ..textload import language_stats
    from ..tokenize import get_tokenizer

    lang_cases = [c for c in cases if c.language]
    if not lang_cases:
        return
    spec = lang_cases[0].model
    path = Path(spec.source) if spec.is_local else None
    tok = get_tokenizer(spec.source, path, corpus, cache_dir)
    langs = sorted({lang for c in lang_cases for lang in str(c.language).split("+")})
    max_len = lang_cases[0].seq_len
    stats = sorted(
        (language_stats(tok, corpus, lang, max_len) for lang in langs), key=lambda s: s.tokens_mean
    )
    payload = {
        "tokenizer": tok.info,
        "max_len": max_len,
        "model": spec.name,
        "languages": [s.to_dict() for s in stats],
    }
    write_atomic(run_dir / "languages.json", json.dumps(payload, indent=2) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    from ..launcher import run_sweep
    from ..render.console import rich_table
    from ..render.rows import result_rows
    from ..report import write_run_report
    from ..results import load_run
    from ..runner import RunOptions

    sweep, cases, corpus = prepare_sweep(args)
    if args.resume is not None and not (args.resume / "run.json").is_file():
        raise HarnessError(f"{args.resume}: not a run directory (no run.json)")
    opts = RunOptions(
        cache_dir=args.cache_dir or default_cache(),
        corpus=corpus,
        allow_pickle=args.allow_pickle,
        isolate=sweep.isolate,
        group_timeout_s=args.group_timeout,
    )
    console = make_console(args.quiet)
    progress, emit = progress_bar(console, len(cases) * sweep.repeats)
    with progress:
        path = run_sweep(sweep, args.out, opts, resume=args.resume, emit=emit, cases=cases)
    if corpus is not None:
        try:
            write_language_stats(path, cases, corpus, opts.cache_dir)
        except HarnessError as exc:  # the cases themselves already recorded the problem
            console.print(f"[yellow]no per-language statistics: {exc}[/yellow]")
    run = load_run(path)
    report = write_run_report(run)
    console.print(rich_table(result_rows(run.latest()), run.meta.run_id))
    console.print(f"records: {path / 'records.jsonl'}\nreport:  {report}  (and report.html)")
    failed = [r for r in run.latest() if r.status in ("error", "invalid")]
    if failed:
        console.print(f"[yellow]{len(failed)} case(s) not measured; see the report[/yellow]")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a sweep (TOML and/or flags) into reports/<run_id>/")
    add_sweep_args(p)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports directory")
    iso = p.add_mutually_exclusive_group()
    iso.add_argument(
        "--isolate", action="store_true", default=None, help="a process per (model, backend) group"
    )
    iso.add_argument("--inline", action="store_true", help="everything in this process")
    p.add_argument("--resume", type=Path, help="continue this run directory")
    p.add_argument("--group-timeout", type=float, help="seconds before an isolated group is killed")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_run)
