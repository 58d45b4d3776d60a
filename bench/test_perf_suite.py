"""The CI suite (``bench/ci/suite.toml``) as pytest-benchmark benchmarks.

    pytest bench/ --benchmark-autosave                 # store under .benchmarks/
    pytest bench/ --benchmark-compare --benchmark-compare-fail=median:5%
    pytest bench/ --benchmark-json out.json            # for github-action-benchmark (tool: pytest)

Each case is one benchmark; a round is one forward pass on the case's batch (real-text
workloads cycle through their batches). Loading, export and parity are done once per
(model, backend) outside the timed region, as in ``harness run``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from harness.cache import default_cache_dir
from harness.execution.options import RunOptions
from harness.execution.plan import expand
from harness.execution.prepared import PreparedGroup, case_inputs, prepare_group
from harness.inputs.corpus import check_languages, find_corpus
from harness.spec.sweep import Case, load_sweep

SUITE = load_sweep(Path(__file__).parent / "ci" / "suite.toml")
# Real-text cases need the corpus ($HARNESS_TATOEBA or the download cache); without one the
# synthetic cases still run.
CORPUS = find_corpus(None) if SUITE.languages else None
SUITE = SUITE.replace(
    languages=tuple(check_languages(CORPUS, SUITE.languages)) if CORPUS is not None else ()
)
CASES = expand(SUITE)
CACHE = default_cache_dir()
OPTS = RunOptions(cache_dir=CACHE, corpus=CORPUS)
_current: dict[tuple[str, str], PreparedGroup] = {}


def _group(case: Case) -> PreparedGroup:
    if case.group_key not in _current:
        for old in _current.values():
            old.backend.close()
        _current.clear()  # one (model, backend) alive at a time: cases come grouped
        _current[case.group_key] = prepare_group(case, OPTS)
    return _current[case.group_key]


@pytest.mark.parametrize("case", CASES, ids=[c.case_id for c in CASES])
def test_suite_case(benchmark: Any, case: Case) -> None:
    group = _group(case)
    assert group.parity["ok"], f"outputs differ from eager: {group.parity}"
    inputs = case_inputs(case, group, OPTS)
    calls = itertools.cycle(inputs.calls)
    benchmark.group = f"{case.model.name} {case.backend}"
    benchmark.extra_info.update(
        {
            "case": case.key,
            "model": case.model.name,
            "backend": case.backend,
            "batch_size": case.batch_size,
            "seq_len": case.seq_len,
            "language": case.language,
            "weights_sha256": group.ckpt.weights.sha256,
            "tokenizer": inputs.tokenizer.get("name"),
            "sequences_per_round": sum(b.sequences for b in inputs.batches) / len(inputs.batches),
        }
    )
    rounds = max(case.measure.min_iters, 2 * len(inputs.calls))
    benchmark.pedantic(
        lambda: next(calls)(),
        rounds=rounds,
        iterations=1,
        warmup_rounds=max(case.measure.warmup_iters, len(inputs.calls)),
    )
