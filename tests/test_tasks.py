"""XTREME task shapes (:mod:`harness.inputs.tasks`, :mod:`harness.spec.tasks`): inputs built
from the fixture corpus, the windowing, the pair encoding, the answer and the search against
brute force, and the bad inputs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.inputs.corpus import read_pairs
from harness.inputs.tasks import (
    Retrieval,
    _pair_row,
    _tagged_row,
    best_span,
    build_task,
    qa_windows,
)
from harness.inputs.tokenization import get_tokenizer
from harness.inputs.workloads import BOS, EOS
from harness.records.results import load_run
from harness.spec.tasks import TaskSettings

VOCAB = 8000


@pytest.fixture(scope="module")
def tok(small_corpus: Path, cache_dir: Path):  # type: ignore[no-untyped-def]
    return get_tokenizer("random-init", None, small_corpus, cache_dir)


def _build(task: str, tok: object, corpus: Path, lang: str = "deu", **kw: object):  # type: ignore[no-untyped-def]
    pairs = read_pairs(corpus, lang).split("measure")
    settings = TaskSettings(**{"retrieval_pool": 8, "qa_context_chars": 120, **kw})  # type: ignore[arg-type]
    return build_task(
        task, tok, pairs, VOCAB, batch_size=3, n_batches=2, max_len=64, settings=settings
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("task", ["pairs", "tagging", "qa", "retrieval"])
def test_each_task_builds_its_calls(task: str, tok: object, small_corpus: Path) -> None:
    wl = _build(task, tok, small_corpus)
    assert len(wl.batches) == len(wl.finish) == 2 and wl.units == [3, 3]
    assert wl.facts["task"] == task and 0 <= wl.facts["pad_share"] < 1
    for b in wl.batches:
        ids = b.input_ids.numpy()
        assert (ids[:, 0] == BOS).all()
        if task == "qa":
            assert b.input_ids.shape[0] >= 3  # a question's windows ride in its call
        else:
            assert b.input_ids.shape[0] == 3
    assert wl.facts["forward_passes_per_unit"] >= 1
    assert (wl.retrieval is not None) == (task == "retrieval")


def test_the_pair_encoding_is_xlmrs_with_the_longer_side_cut_first() -> None:
    assert _pair_row([10, 11], [20], 16) == [BOS, 10, 11, EOS, EOS, 20, EOS]
    row = _pair_row(list(range(100, 120)), [7, 8], 12)
    assert row == [BOS, 100, 101, 102, 103, 104, 105, EOS, EOS, 7, 8, EOS] and len(row) == 12


def test_word_labels_are_read_at_each_words_first_piece(tok: object) -> None:
    row, firsts = _tagged_row(tok, "Das Haus ist groß", VOCAB, 64)  # type: ignore[arg-type]
    assert row[0] == BOS and row[-1] == EOS and firsts[0] == 1 and len(firsts) == 4
    assert firsts == sorted(firsts) and all(1 <= f < len(row) - 1 for f in firsts)


@pytest.mark.parametrize(
    ("context", "budget", "stride"), [(5, 10, 4), (300, 100, 40), (1000, 317, 128)]
)
def test_qa_windows_cover_every_context_token_with_the_configured_overlap(
    context: int, budget: int, stride: int
) -> None:
    spans = qa_windows(context, budget, stride)
    covered = np.zeros(context, bool)
    for a, b in spans:
        assert 0 <= a < b <= context and b - a <= budget
        covered[a:b] = True
    assert covered.all() and spans[-1][1] == context
    starts = [a for a, _ in spans]
    assert all(y - x == stride for x, y in itertools.pairwise(starts))
    for (_a1, b1), (a2, _) in itertools.pairwise(spans):
        assert b1 - a2 == budget - stride  # consecutive windows overlap by the rest


def test_longer_paragraphs_need_more_windows(tok: object, small_corpus: Path) -> None:
    short = _build(
        "qa", tok, small_corpus, qa_context_chars=40, qa_max_len=96, doc_stride=16, max_query_len=16
    )
    long = _build(
        "qa",
        tok,
        small_corpus,
        qa_context_chars=600,
        qa_max_len=96,
        doc_stride=16,
        max_query_len=16,
    )
    assert long.facts["forward_passes_per_unit"] > short.facts["forward_passes_per_unit"]
    assert long.facts["context_tokens_per_unit"] > short.facts["context_tokens_per_unit"]


def test_the_best_span_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        s, e = rng.standard_normal(40), rng.standard_normal(40)
        lo, hi, m = 5, 33, 7
        score, i, j = best_span(s, e, lo, hi, m)
        brute = max((s[a] + e[b], a, b) for a in range(lo, hi) for b in range(a, min(hi, a + m)))
        assert (i, j) == brute[1:] and score == pytest.approx(brute[0])


def test_the_search_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    pool, queries = rng.standard_normal((200, 16)), rng.standard_normal((30, 16))
    r = Retrieval([], 200)
    r.set_pool(pool)
    brute = [
        int(np.argmax([q @ p / np.linalg.norm(q) / np.linalg.norm(p) for p in pool]))
        for q in queries
    ]
    assert list(r.search(queries)) == brute
    assert "numpy" in r.library


def test_a_language_with_too_few_sentences_says_how_many(tok: object, small_corpus: Path) -> None:
    with pytest.raises(HarnessError, match="retrieval task needs at least 500 measured sentences"):
        _build("retrieval", tok, small_corpus, retrieval_pool=500)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tasks", "summarization"], "unknown task 'summarization'"),
        (
            ["--tasks", "qa", "--doc-stride", "400"],
            "doc_stride (400) must be below qa_max_len (384)",
        ),
        (["--tasks", "retrieval"], "needs at least 500 measured sentences"),
        (["--tasks", "qa"], None),  # needs languages
    ],
)
def test_bad_task_inputs_are_one_line_and_exit_2(
    flags: list[str],
    message: str | None,
    tmp_path: Path,
    small_corpus: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    langs = [] if message is None else ["--languages", "deu"]
    out = tmp_path / "out"
    argv = [
        "run",
        "-m",
        "xlmr-tiny",
        *flags,
        *langs,
        "--corpus",
        str(small_corpus),
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (message or "tasks are built from real text") in err[0]
    assert not out.exists()


def test_an_onnx_export_serves_only_its_heads_task(
    tmp_path: Path, cache_dir: Path, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_onnx_export_dir import _weights, hand_made_export

    export = hand_made_export(_weights(cache_dir), tmp_path / "export")
    argv = ["run", "-m", str(export), "-b", "onnxruntime", "--tasks", "qa", "--languages", "deu",
            "--corpus", str(small_corpus), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    assert (
        "cannot serve the qa task, which needs a question-answering head" in capsys.readouterr().err
    )


@pytest.mark.slow
def test_a_task_run_records_the_cost_of_one_unit(
    tmp_path: Path, cache_dir: Path, small_corpus: Path
) -> None:
    out = tmp_path / "out"
    argv = ["run", "-m", "xlmr-tiny", "-b", "eager", "-b", "onnxruntime", "--tasks", "pairs,tagging,qa,retrieval",
            "--languages", "deu,jpn", "--english", "--retrieval-pool", "8", "--qa-context-chars", "200",
            "--batch-sizes", "2", "--no-synthetic", "--inline", "--max-time", "0.1",
            "--corpus", str(small_corpus), "--cache-dir", str(cache_dir), "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    run_dir = next(out.iterdir())
    run = load_run(run_dir)
    assert len(run.records) == 2 * 4 * 4  # backends x tasks x (2 languages + their English sides)
    for rec in run.records:
        t = rec.workload["task"]
        assert rec.status == "ok" and t["ms_per_unit_p50"] > 0 and t["units_per_s"] > 0
        assert t["agreement"] >= 0.99  # fp32 backends answer as eager does
        assert rec.throughput["units_per_s"] == t["units_per_s"]
        heads = {"pairs": "sequence-classification", "tagging": "token-classification",
                 "qa": "question-answering", "retrieval": "encoder"}  # fmt: skip
        assert rec.checkpoint["head"] == heads[t["task"]]
    assert all(
        "search_s_per_unit" in r.workload["task"]
        for r in run.records
        if r.workload["task"]["task"] == "retrieval"
    )
    report = (run_dir / "report.md").read_text()
    assert "XTREME task shapes per language" in report and "vs English" in report
    json.dumps([r.to_dict() for r in run.records])
