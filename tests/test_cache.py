"""Caches that check themselves (:mod:`harness.cache`)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from harness.cache import CacheRebuiltWarning, check, entries, manifest_of, seal_entry, usable
from harness.cli import main
from harness.records.results import load_run


def test_an_entry_that_matches_its_manifest_is_used(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    entry.mkdir()
    (entry / "a.bin").write_bytes(b"x" * 100)
    seal_entry(entry)
    assert check(manifest_of(entry)) is None
    assert usable(entry, [entry / "a.bin"], "thing")


def test_a_truncated_entry_is_removed_and_says_why(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    entry.mkdir()
    (entry / "a.bin").write_bytes(b"x" * 5000)
    seal_entry(entry)
    (entry / "a.bin").write_bytes(b"x" * 100)
    assert "a.bin is 100 bytes, was written as 4.9 KiB" in str(check(manifest_of(entry)))
    with pytest.warns(CacheRebuiltWarning, match="is damaged .a.bin is 100 bytes"):
        assert not usable(entry, [entry / "a.bin"], "thing")
    assert not entry.exists()


def test_a_rewritten_file_of_the_same_size_is_caught_by_its_hash(tmp_path: Path) -> None:
    f = tmp_path / "tok.model"
    f.write_bytes(b"a" * 64)
    seal_entry(f)
    f.write_bytes(b"b" * 64)  # same size, new content (and a new mtime)
    assert "changed since it was written" in str(check(manifest_of(f)))


def test_entries_without_a_manifest_are_adopted(tmp_path: Path) -> None:
    f = tmp_path / "old.model"
    f.write_bytes(b"old")
    assert usable(f, [f], "tokenizer") and manifest_of(f).is_file()


@pytest.mark.slow
def test_a_corrupted_onnx_export_is_rebuilt_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: an ONNX export in the cache truncated to 100 bytes made every later
    run fail with InvalidProtobuf until the user deleted it by hand."""
    cache = tmp_path / "cache"
    args = ["run", "-m", "xlmr-tiny", "-b", "onnxruntime", "--batch-sizes", "1", "--seq-lens",
            "8", "--inline", "--max-time", "0.05", "--cache-dir", str(cache), "-q"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    (graph,) = (cache / "onnx").glob("*/model.onnx")
    graph.write_bytes(graph.read_bytes()[:100])
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main([*args, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "ONNX export" in err and "is damaged (model.onnx is 100 bytes" in err
    (run_dir,) = (tmp_path / "b").iterdir()
    (rec,) = load_run(run_dir).records
    assert rec.status == "ok" and rec.backend["exported"] is True
    assert main(["cache", "verify", "--cache-dir", str(cache)]) == 0
    assert "ok" in capsys.readouterr().out


def test_the_cache_command_lists_verifies_and_clears(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    good = cache / "models" / "abc"
    good.mkdir(parents=True)
    (good / "config.json").write_text("{}")
    (good / "model.safetensors").write_bytes(b"w" * 2048)
    seal_entry(good)
    bad = cache / "tokenizers" / "surrogate.model"
    bad.parent.mkdir()
    bad.write_bytes(b"t" * 300)
    seal_entry(bad)
    bad.write_bytes(b"t" * 10)
    assert {e.kind for e in entries(cache)} == {"checkpoint", "tokenizer"}
    assert main(["cache", "--cache-dir", str(cache)]) == 0
    listing = capsys.readouterr().out
    assert "checkpoint" in listing and "KiB" in listing and "2 entries" in listing
    assert main(["cache", "verify", "--cache-dir", str(cache)]) == 3
    out = capsys.readouterr().out
    assert "DAMAGED: surrogate.model is 10 bytes" in out and "1 damaged entry" in out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert not entries(cache)
    assert main(["cache", "--cache-dir", str(tmp_path / "none")]) == 2
    shutil.rmtree(cache)
