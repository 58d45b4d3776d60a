"""``harness run``: expand a sweep, measure it into a run directory, print and write the report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EXIT_CASES_FAILED, EXIT_OK, HarnessError
from harness.spec.sweep import SweepSpec

if TYPE_CHECKING:
    from harness.execution.plan import PreparedSweep
    from harness.spec.sweep import Case

from harness.commands.common import (
    DEFAULT_OUT,
    add_limit_args,
    add_task_settings_args,
    ints,
    make_console,
    progress_bar,
    run_options,
    task_settings,
    words,
)

__all__ = ["add_sweep_args", "prepare_sweep", "register", "sweep_from_args"]


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
        "--tasks",
        type=words,
        help="serve the languages as XTREME task shapes: pairs, tagging, qa, retrieval",
    )
    p.add_argument(
        "--english",
        action="store_true",
        default=None,
        help="also each language's English side (deu@eng): the reference its cost is a ratio to",
    )
    add_task_settings_args(p)
    p.add_argument(
        "--corpus",
        type=Path,
        help="Tatoeba directory (default: $HARNESS_TATOEBA, else the download cache)",
    )
    p.add_argument(
        "--fetch-corpus",
        action="store_true",
        help="without a corpus, download the sweep's languages from upstream once (needs internet)",
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
        "--ignore-custom-code",
        action="store_true",
        help="measure a checkpoint whose config asks for custom code (auto_map) as plain XLM-R",
    )
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


def _task_settings(sweep: SweepSpec, args: argparse.Namespace) -> Any:
    """The sweep's task settings with the CLI's overrides (validated again on creation)."""
    return task_settings(sweep.task, args)


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


def _fetch_corpus(languages: tuple[str, ...]) -> Path | None:
    """Download the sweep's languages into the cache, with a progress bar; ``None`` offline."""
    from harness.inputs.corpus import XTREME_CODES, corpus_cache_dir, fetch_tatoeba

    codes = sorted({XTREME_CODES.get(p, p) for code in languages for p in code.split("+")})
    dest = corpus_cache_dir()
    console = make_console()
    progress, emit = progress_bar(console, 2 * len(codes))
    try:
        with progress:
            fetch_tatoeba(dest, codes, on_file=lambda name: emit(("done", name)), timeout_s=15.0)
    except HarnessError as exc:
        console.print(f"[yellow]could not fetch the Tatoeba corpus: {exc}[/yellow]")
        return None
    return dest


def _resumed_sweep(run_dir: Path) -> SweepSpec:
    from harness.records.results import load_run

    if not (run_dir / "run.json").is_file():
        raise HarnessError(f"{run_dir}: not a run directory (no run.json)")
    data = load_run(run_dir).meta.config.get("sweep")
    if not isinstance(data, dict):
        raise HarnessError(f"{run_dir}: run.json holds no sweep to resume")
    return SweepSpec.from_dict(dict(data), where=f"{run_dir}/run.json")


def sweep_from_args(args: argparse.Namespace) -> SweepSpec:
    """The sweep a command's flags describe: its TOML (or a resumed run's), then the flags."""
    from harness.inputs.corpus import XTREME_LANGUAGES
    from harness.spec.sweep import load_sweep

    if args.sweep:
        sweep = load_sweep(args.sweep)
    elif getattr(args, "resume", None) is not None:
        sweep = _resumed_sweep(args.resume)  # the run's own sweep: `--resume RUN_DIR` alone
    else:
        sweep = SweepSpec(name="cli")
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
        tasks=getattr(args, "tasks", None),
        english=getattr(args, "english", None),
        task=_task_settings(sweep, args),
    )
    if sweep.languages == ("xtreme",):  # in a sweep file as on the command line
        sweep = sweep.replace(languages=XTREME_LANGUAGES)
    return sweep


def prepare_sweep(args: argparse.Namespace, *, skip_missing_text: bool = True) -> PreparedSweep:
    """Sweep from TOML + flags, checked (:func:`harness.execution.plan.plan_sweep`); nothing touches the
    output yet."""
    from harness.execution.plan import plan_sweep

    return plan_sweep(
        sweep_from_args(args),
        allow_pickle=args.allow_pickle,
        allow_custom_code=getattr(args, "ignore_custom_code", False),
        skip_missing_text=skip_missing_text,
        fetch_corpus=_fetch_corpus if getattr(args, "fetch_corpus", False) else None,
    )


def write_language_stats(run_dir: Path, cases: list[Case], corpus: Path, cache_dir: Path) -> None:
    """Token statistics of the run's languages, with the tokenizer of its first checkpoint."""
    import json

    from harness.inputs.textload import language_stats
    from harness.inputs.tokenization import get_tokenizer
    from harness.records.store import write_atomic

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
    from harness.api import check_output
    from harness.execution.launcher import run_sweep
    from harness.records.results import load_run
    from harness.render.console import rich_table
    from harness.render.rows import result_rows
    from harness.render.run_report import write_run_report

    check_output(args.out)
    prepared = prepare_sweep(args)
    sweep, cases, corpus = prepared.sweep, prepared.cases, prepared.corpus
    if prepared.skipped:
        langs = sorted({str(c.language) for c, _ in prepared.skipped})
        print(
            f"note: {len(prepared.skipped)} language case(s) skipped ({', '.join(langs)}): "
            f"{prepared.skipped[0][1]}",
            file=sys.stderr,
        )
    if args.resume is not None and not (args.resume / "run.json").is_file():
        raise HarnessError(f"{args.resume}: not a run directory (no run.json)")
    ray = _ray_target(args)
    opts = run_options(
        args,
        corpus,
        isolate=sweep.isolate,
        group_timeout_s=args.group_timeout,
    )
    console = make_console(args.quiet)
    progress, emit = progress_bar(console, len(cases) * sweep.repeats + len(prepared.skipped))
    with progress:
        path = run_sweep(
            sweep,
            args.out,
            opts,
            resume=args.resume,
            emit=emit,
            cases=cases,
            skipped=prepared.skipped,
            ray=ray,
        )
    if corpus is not None:
        try:
            write_language_stats(path, cases, corpus, opts.cache_dir)
        except HarnessError as exc:  # the cases themselves already recorded the problem
            console.print(f"[yellow]no per-language statistics: {exc}[/yellow]")
    run = load_run(path)
    report = write_run_report(run)
    latest = run.latest()
    shown = [r for r in latest if r.status != "skipped"]
    console.print(rich_table(result_rows(shown), run.meta.run_id))
    if len(shown) < len(latest):
        reasons = sorted({r.message.split(":")[0] for r in latest if r.status == "skipped"})
        console.print(
            f"[yellow]{len(latest) - len(shown)} case(s) skipped ({'; '.join(reasons)}); "
            "listed in the report[/yellow]"
        )
    console.print(f"records: {path / 'records.jsonl'}\nreport:  {report}  (and report.html)")
    return report_failed_cases(run.latest())


def _ray_target(args: argparse.Namespace) -> Any:
    """``--executor`` as a :class:`~harness.execution.ray_executor.RayTarget` (``None``: local)."""
    from harness.execution.ray_executor import parse_executor, ray_unavailable

    target = parse_executor(args.executor)
    if target is None:
        if args.ray_share_nodes or args.ray_retries:
            raise HarnessError("--ray-share-nodes and --ray-retries need --executor ray")
        return None
    why = ray_unavailable()
    if why is not None:
        raise HarnessError(why)
    if args.ray_retries < 0:
        raise HarnessError("--ray-retries must be >= 0")
    return dataclasses.replace(target, share_nodes=args.ray_share_nodes, retries=args.ray_retries)


def report_failed_cases(records: list[Any]) -> int:
    """Each ``error`` / ``invalid`` case on stderr with its one-line reason; the exit code."""
    failed = [r for r in records if r.status in ("error", "invalid")]
    for r in failed:
        print(
            f"{r.status}: {r.case_id}: {r.message.splitlines()[0] if r.message else ''}",
            file=sys.stderr,
        )
    if failed:
        print(
            f"{len(failed)} case(s) not measured (exit {EXIT_CASES_FAILED}); tracebacks are in "
            "the records",
            file=sys.stderr,
        )
        return EXIT_CASES_FAILED
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="Run a sweep (a TOML file and/or flags) into reports/<run_id>/.")
    add_sweep_args(p)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports directory")
    iso = p.add_mutually_exclusive_group()
    iso.add_argument(
        "--isolate", action="store_true", default=None, help="a process per (model, backend) group"
    )
    iso.add_argument("--inline", action="store_true", help="everything in this process")
    p.add_argument("--resume", type=Path, help="continue this run directory")
    p.add_argument("--group-timeout", type=float, help="seconds before an isolated group is killed")
    add_limit_args(p)
    p.add_argument(
        "--executor",
        default="local",
        help="local (default), ray (a local Ray instance, or $RAY_ADDRESS), or ray://HOST:PORT",
    )
    p.add_argument(
        "--ray-share-nodes",
        action="store_true",
        help="let timed groups share a Ray node (default: one per node, for clean timings)",
    )
    p.add_argument(
        "--ray-retries",
        type=int,
        default=0,
        help="resubmit a group whose worker died this many times before recording an error",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_run)
