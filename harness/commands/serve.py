"""``harness serve-bench``: capacity under a latency bound, per language, through MLPerf LoadGen."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from harness.commands.common import (
    DEFAULT_OUT,
    add_task_settings_args,
    make_console,
    run_options,
    task_settings,
    words,
)
from harness.errors import HarnessError

__all__ = ["parse_duration", "register"]


def parse_duration(text: str) -> float:
    """``50ms``, ``0.05s``, ``50`` (milliseconds) → seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|us)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 50ms or 0.05s, got {text!r}")
    value = float(m.group(1))
    unit = m.group(2) or "ms"
    return value * {"ms": 1e-3, "s": 1.0, "us": 1e-6}[unit]


def _resumed(args: argparse.Namespace) -> Any:
    from harness.inputs.corpus import resolve_corpus
    from harness.records.results import load_run
    from harness.serving.loadgen import require_loadgen
    from harness.serving.spec import ServeSpec

    require_loadgen()
    if args.models or args.backends or args.languages or args.tasks:
        raise HarnessError(
            "--resume takes the run's own settings: drop -m, -b, --languages and --tasks"
        )
    run = load_run(args.resume)
    if run.meta.kind != "serve":
        raise HarnessError(f"{args.resume}: not a serve-bench run")
    return ServeSpec.from_run(run.meta.config, str(args.resume)), resolve_corpus(args.corpus)


def _spec(args: argparse.Namespace) -> Any:
    from harness.backends import BACKENDS
    from harness.checkpoints.load import preflight
    from harness.commands.run import _backend_options
    from harness.execution.plan import expand, normalized_calibration
    from harness.inputs.corpus import read_pairs, resolve_corpus
    from harness.inputs.tasks import needed_sentences
    from harness.serving.loadgen import require_loadgen
    from harness.serving.spec import ServeSpec, check_serve_backends
    from harness.serving.traffic import traffic_name
    from harness.spec.sweep import SweepSpec
    from harness.spec.tasks import TaskSettings, task_of

    require_loadgen()
    if not args.models or not args.backends or not args.languages:
        raise HarnessError("serve-bench needs -m MODEL, -b BACKEND and --languages")
    check_serve_backends(tuple(args.backends))
    corpus = resolve_corpus(args.corpus)
    traffic = tuple(dict.fromkeys(traffic_name(t, corpus) for t in args.languages))
    settings = task_settings(TaskSettings(), args)
    for code in {part.split(":")[0] for t in traffic for part in t.split("+")}:
        pairs = read_pairs(corpus, code)  # present, parallel, UTF-8, not empty: or exit 2 now
        for task in args.tasks or ():
            task_of(task)
            need = needed_sentences(task, settings)
            have = len(pairs.split("measure").text)
            if have < need:
                raise HarnessError(
                    f"{code}: the {task} task needs at least {need} measured sentences, the "
                    f"corpus has {have}"
                    + (" (lower --retrieval-pool)" if task == "retrieval" else "")
                )
    options = _backend_options(args.backend_option, {}) or {}
    calibrated = [b for b in args.backends if getattr(BACKENDS.get(b), "calibrated", False)]
    options = normalized_calibration(options, calibrated, corpus)
    sweep = SweepSpec(
        name="serve",
        models=tuple(args.models),
        backends=tuple(args.backends),
        batch_sizes=(args.max_batch,),
        seq_lens=(args.max_len,),
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        backend_options=options,
    )
    cases = expand(sweep)  # resolves models, checks backends, devices, dtypes and options
    models = tuple({c.model.name: c.model for c in cases}.values())
    for model in models:
        preflight(model, allow_pickle=args.allow_pickle, allow_custom_code=args.ignore_custom_code)
    spec = ServeSpec(
        models=models,
        backends=tuple(args.backends),
        traffic=traffic,
        policies=args.policies,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        max_len=args.max_len,
        max_batch=args.max_batch,
        max_delay_s=args.max_delay,
        bound_s=args.p99,
        percentile=args.percentile,
        min_queries=args.min_queries,
        min_duration_s=args.min_duration,
        rel_tol=args.resolution,
        max_probes=args.max_probes,
        price_per_hour=args.price_per_hour,
        options={b: tuple(sorted(o.items())) for b, o in options.items()},
        tasks=tuple(args.tasks or ()),
        task_settings=settings,
    )
    spec.groups()  # a task whose head an ONNX export lacks: one line now
    return spec, corpus


def cmd_serve_bench(args: argparse.Namespace) -> int:
    from harness.commands.run import report_failed_cases
    from harness.records.results import load_run
    from harness.render.console import rich_table
    from harness.render.run_report import write_serve_report
    from harness.render.serving import capacity_rows
    from harness.serving.bench import run_serve_bench

    spec, corpus = _resumed(args) if args.resume is not None else _spec(args)
    opts = run_options(args, corpus)
    console = make_console(args.quiet)

    def emit(event: tuple[str, Any]) -> None:
        kind, payload = event
        if kind == "start":
            console.print(f"[bold]{payload}[/bold]")
        elif kind == "probe":
            _, r = payload
            verdict = "valid" if r.valid else f"INVALID ({r.invalid_reason.strip() or 'error'})"
            console.print(
                f"  server {r.target_qps:8.1f} QPS: p99 {1e3 * r.latency_s['p99']:7.1f} ms, "
                f"{r.query_count} queries, mean batch {r.mean_batch:.1f} → {verdict}"
            )
        elif kind == "done":
            console.print(f"  → {payload.status}: {payload.message or 'done'}")

    path = run_serve_bench(spec, args.out, opts, emit, resume=args.resume)
    run = load_run(path)
    report = write_serve_report(run)
    console.print(rich_table(capacity_rows(run.latest()), run.meta.run_id))
    console.print(f"records: {path / 'records.jsonl'}\nreport:  {report}  (and report.html)")
    return report_failed_cases(run.latest())


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve-bench",
        help="Find the highest QPS under a latency bound, per language (MLPerf LoadGen, "
        "dynamic batching).",
    )
    p.add_argument("-m", "--model", action="append", dest="models", help="checkpoint (repeatable)")
    p.add_argument("-b", "--backend", action="append", dest="backends", help="backend (repeatable)")
    p.add_argument(
        "--languages",
        type=words,
        help="traffic, comma-separated: deu,jpn,tha or mixtures deu+jpn+tha / deu:2+jpn:1",
    )
    p.add_argument(
        "--tasks",
        type=words,
        help="Serve XTREME task units instead of sentences: pairs, tagging, qa, retrieval (a "
        "request is one unit: a pair, a sentence to tag, a question with all its windows, a "
        "query to retrieve).",
    )
    add_task_settings_args(p)
    p.add_argument("--policies", type=words, default=("longest", "bucket"), help="longest,bucket")
    p.add_argument("--p99", type=parse_duration, default=0.05, help="latency bound (default 50ms)")
    p.add_argument(
        "--percentile", type=float, default=0.99, help="the bound's percentile (default 0.99)"
    )
    p.add_argument("--max-batch", type=int, default=8, help="dynamic batcher's largest batch")
    p.add_argument(
        "--max-delay", type=parse_duration, default=0.005, help="batcher's max queue delay (5ms)"
    )
    p.add_argument("--max-len", type=int, default=128, help="max tokens per query (truncation)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--min-queries", type=int, default=1024, help="LoadGen min queries per run")
    p.add_argument("--min-duration", type=float, default=5.0, help="LoadGen min seconds per run")
    p.add_argument("--resolution", type=float, default=0.05, help="capacity bracket width (5%%)")
    p.add_argument("--max-probes", type=int, default=8, help="Server runs per capacity search")
    p.add_argument("--price-per-hour", type=float, help="machine price → cost per 1M requests")
    p.add_argument("--corpus", type=Path, help="Tatoeba directory (default: $HARNESS_TATOEBA)")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--allow-pickle", action="store_true")
    p.add_argument("--ignore-custom-code", action="store_true")
    p.add_argument(
        "--backend-option", action="append", metavar="BACKEND.KEY=VALUE", help="(repeatable)"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--resume", type=Path, help="finish this serve-bench run's remaining cases")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_serve_bench)
