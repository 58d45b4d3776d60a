"""``harness train-intermediate``: fine-tune a baseline on an English intermediate task."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.commands.common import default_cache, make_console
from harness.errors import EXIT_OK

__all__ = ["register"]


def cmd_train(args: argparse.Namespace) -> int:
    from harness.inputs.corpus import resolve_corpus
    from harness.spec.config import resolve_model
    from harness.training import TrainSpec, train_intermediate

    spec = TrainSpec(
        task=args.task,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_len=args.max_len,
        seed=args.seed,
    )
    baseline = resolve_model(args.model)
    corpus = resolve_corpus(args.corpus)
    summary = train_intermediate(
        baseline,
        args.out,
        spec,
        corpus,
        args.cache_dir or default_cache(),
        allow_pickle=args.allow_pickle,
    )
    make_console().print(
        f"trained {baseline.name} on {spec.task} for {spec.steps} steps in {summary['seconds']:.0f} s: "
        f"loss {summary['first_loss']:.3f} → {summary['last_loss']:.3f} (means of the first and last 10 steps)\n"
        f"checkpoint: {args.out}  (compare it: harness compare -m {baseline.name} -m {args.out})"
    )
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train-intermediate", help="Fine-tune a baseline on an English intermediate task (offline)."
    )
    p.add_argument("-m", "--model", default="xlmr-tiny", help="baseline checkpoint")
    p.add_argument(
        "--task",
        default="pair-classification",
        choices=("pair-classification", "span", "multiple-choice"),
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to create")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", type=Path)
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--allow-pickle", action="store_true")
    p.set_defaults(func=cmd_train)
