"""Run directories that heal and never glue (:mod:`harness.records.store`)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.execution.launcher import run_sweep
from harness.execution.options import RunOptions
from harness.records.results import DamagedRecordsWarning, Record, RunMeta, load_run
from harness.records.store import RunStore, heal
from harness.spec.config import MeasureSpec
from harness.spec.sweep import SweepSpec

TINY = SweepSpec(
    name="torn",
    models=("xlmr-tiny",),
    backends=("eager",),
    batch_sizes=(1, 2),
    seq_lens=(8,),
    threads=1,
    measure=MeasureSpec(warmup_iters=1, min_iters=3, max_iters=5, max_time_s=0.05),
)


def _store(tmp_path: Path) -> RunStore:
    return RunStore.create(
        tmp_path, RunMeta(run_id="r", created="now", kind="sweep", env={}, config={})
    )


def _rec(i: int) -> Record:
    return Record(case_id=f"c{i}", case={}, status="ok", samples=[0.01] * 3)


def test_a_torn_tail_is_moved_aside_before_the_next_append(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append(_rec(0))
    store.append(_rec(1))
    whole = store.records_file.read_bytes()
    store.records_file.write_bytes(whole[:-40])  # a kill in the middle of the second append
    store.append(_rec(2))
    lines = store.records_file.read_text().splitlines()
    assert [json.loads(x)["case_id"] for x in lines] == ["c0", "c2"]
    (aside,) = tmp_path.joinpath("r").glob("records.jsonl.torn-*")
    assert whole[:-40].endswith(aside.read_bytes())  # the fragment, kept, never deleted


def test_heal_leaves_a_clean_file_alone(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append(_rec(0))
    assert heal(store.records_file) is None and store.heal() is None
    assert not list(store.path.glob("*.torn-*"))


def test_readers_say_how_many_lines_they_skipped(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append(_rec(0))
    with store.records_file.open("a") as fh:
        fh.write('{"case_id": "c1", "sta')
    with pytest.warns(DamagedRecordsWarning, match=r"records.jsonl: 1 line\(s\)"):
        run = load_run(store.path)
    assert run.skipped_lines == 1 and len(run.records) == 1


def test_a_full_disk_leaves_no_torn_record(tmp_path: Path) -> None:
    """The append fails part-way (RLIMIT_FSIZE: the file may grow no further): one line
    naming the file, the file cut back to its last whole record, the run resumable."""
    store = _store(tmp_path)
    store.append(_rec(0))
    size = store.records_file.stat().st_size
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from harness.records.store import RunStore\n"
        "from harness.records.results import Record\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 30}, {size + 30}))\n"
        "store = RunStore(Path(sys.argv[1]))\n"
        "store.append(Record(case_id='c1', case={}, status='ok', samples=[0.01] * 50))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(store.path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "the disk is full or the file too large" in proc.stderr
    assert str(store.records_file) in proc.stderr
    assert store.records_file.stat().st_size == size  # nothing glued, nothing torn
    store.append(_rec(2))
    assert [r.case_id for r in load_run(store.path).records] == ["c0", "c2"]


def test_creating_a_run_in_an_unwritable_place_writes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(HarnessError, match="not writable"):
        _store(blocker / "reports")
    assert blocker.read_text() == "not a directory"


@pytest.mark.slow
def test_resume_after_a_torn_last_record_at_any_offset(tmp_path: Path, cache_dir: Path) -> None:
    """A finished two-case run, its last record cut at many byte offsets (what a kill or a
    full disk during an append leaves), resumed: every planned case present once, every line
    parsable, every fragment kept beside the file."""
    opts = RunOptions(cache_dir=cache_dir)
    done = run_sweep(TINY, tmp_path / "base", opts)
    whole = (done / "records.jsonl").read_bytes()
    last = whole.rstrip(b"\n").rfind(b"\n") + 1
    planned = load_run(done).meta.planned
    assert len(planned) == 2
    offsets = sorted({last + 1, last + 40, len(whole) - 40, len(whole) - 2, len(whole) - 1})
    offsets += list(range(last + 100, len(whole) - 100, max(1, (len(whole) - last) // 12)))
    for cut in offsets:
        run_dir = tmp_path / f"cut{cut}"
        run_dir.mkdir()
        (run_dir / "run.json").write_bytes((done / "run.json").read_bytes())
        (run_dir / "records.jsonl").write_bytes(whole[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedRecordsWarning)
            run_sweep(TINY, tmp_path, opts, resume=run_dir)
        lines = (run_dir / "records.jsonl").read_text().splitlines()
        ids = [json.loads(line)["case_id"] for line in lines]  # every line parses
        assert sorted(ids) == sorted(planned), cut
        assert len(list(run_dir.glob("records.jsonl.torn-*"))) == 1


@pytest.mark.slow
def test_a_full_disk_during_a_run_is_one_line_and_resumable(
    tmp_path: Path, cache_dir: Path
) -> None:
    """`harness run` whose records cannot grow (RLIMIT_FSIZE, as a full disk): exit 2 with
    one line naming the file, no torn record, and `--resume` finishes the run."""
    import resource

    out = tmp_path / "out"
    argv = [sys.executable, "-m", "harness", "run", "-m", "xlmr-tiny", "-b", "eager",
            "--batch-sizes", "1,2", "--seq-lens", "8", "--threads", "1", "--inline",
            "--max-time", "0.05", "--cache-dir", str(cache_dir), "-q"]  # fmt: skip

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))  # run.json fits, a record not

    warm = subprocess.run([*argv, "--out", str(tmp_path / "warm")], cwd=tmp_path, check=False)
    assert warm.returncode == 0  # the model is built and cached before the disk "fills"

    proc = subprocess.run(
        [*argv, "--out", str(out)], preexec_fn=small_files, capture_output=True, text=True,
        check=False, cwd=tmp_path,
    )  # fmt: skip
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and "the disk is full or the file too large" in err[0]
    (run_dir,) = out.iterdir()
    records = run_dir / "records.jsonl"
    assert (
        not records.exists()
        or records.read_bytes() in (b"",)
        or records.read_bytes().endswith(b"\n")
    )
    done = subprocess.run([*argv, "--resume", str(run_dir)], cwd=tmp_path, check=False)
    assert done.returncode == 0
    run = load_run(run_dir)
    assert sorted(r.case_id for r in run.records) == sorted(run.meta.planned)
