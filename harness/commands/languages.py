"""``harness languages``: per-language token statistics (fertility, truncation, UNK share)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.commands.common import default_cache, make_console, words
from harness.errors import EXIT_OK

__all__ = ["register"]


def cmd_languages(args: argparse.Namespace) -> int:
    from harness.inputs.corpus import (
        XTREME_LANGUAGES,
        available_languages,
        check_languages,
        resolve_corpus,
    )
    from harness.inputs.textload import language_stats
    from harness.inputs.tokenization import get_tokenizer
    from harness.records.store import write_atomic
    from harness.render.console import rich_table
    from harness.render.languages import stats_rows
    from harness.spec.config import resolve_model

    corpus = resolve_corpus(args.corpus)
    if args.languages == ("all",):
        langs = available_languages(corpus)
    else:
        langs = check_languages(corpus, args.languages or XTREME_LANGUAGES)
    spec = resolve_model(args.model)
    path = Path(spec.source) if spec.is_local else None
    tok = get_tokenizer(spec.source, path, corpus, args.cache_dir or default_cache())
    stats = [language_stats(tok, corpus, lang, args.max_len) for lang in langs]
    stats.sort(key=lambda s: s.tokens_mean)
    console = make_console()
    title = f"tokens per sentence · tokenizer {tok.info['name']} ({tok.info['kind']})"
    console.print(rich_table(stats_rows(stats), title))
    if tok.kind == "surrogate":
        console.print("[yellow]surrogate tokenizer: lengths differ from XLM-R's own[/yellow]")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "tokenizer": tok.info,
            "max_len": args.max_len,
            "corpus": str(corpus),
            "languages": [s.to_dict() for s in stats],
        }
        write_atomic(args.out, json.dumps(payload, indent=2) + "\n")
        console.print(f"written: {args.out}")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("languages", help="Show per-language tokenization statistics on Tatoeba.")
    p.add_argument("--languages", type=words, help="codes (default: XTREME's 36), or 'all'")
    p.add_argument("-m", "--model", default="xlmr-base", help="whose tokenizer (surrogate if none)")
    p.add_argument("--corpus", type=Path)
    p.add_argument("--max-len", type=int, default=128, help="for the truncation rate")
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--out", type=Path, help="also write the statistics as JSON here")
    p.set_defaults(func=cmd_languages)
