from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.execution.plan import expand
from harness.spec.sweep import Case, SweepSpec, load_sweep

REPO = Path(__file__).resolve().parent.parent


def test_expansion_is_explicit_grouped_and_cheapest_first() -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny", "xlmr-tiny-deep"),
        backends=("eager", "onnxruntime"),
        batch_sizes=(8, 1),
        seq_lens=(64, 16),
        threads=2,
    )
    cases = expand(sweep)
    assert len(cases) == 2 * 2 * 2 * 2
    groups = [c.group_key for c in cases]
    assert groups[:4] == [("xlmr-tiny", "encoder", "eager", "float32")] * 4
    sizes = [c.batch_size * c.seq_len for c in cases[:4]]
    assert sizes == sorted(sizes)
    assert len({c.case_id for c in cases}) == len(cases)


def test_language_cases() -> None:
    sweep = SweepSpec(
        models=("xlmr-tiny",),
        backends=("eager",),
        batch_sizes=(4,),
        seq_lens=(16,),
        languages=("deu", "jpn"),
        policies=("fixed", "sorted"),
        lang_max_len=64,
    )
    cases = expand(sweep)
    lang = [c for c in cases if c.language]
    assert len(cases) == 1 + 4
    assert {(c.language, c.policy) for c in lang} == {
        ("deu", "fixed"),
        ("deu", "sorted"),
        ("jpn", "fixed"),
        ("jpn", "sorted"),
    }
    assert all(c.seq_len == 64 for c in lang)
    assert cases[0].language is None  # synthetic first


def test_case_key_pairs_checkpoints() -> None:
    sweep = SweepSpec(models=("xlmr-tiny", "xlmr-tiny-deep"), backends=("eager",))
    a, b = expand(sweep)
    assert a.key == b.key and a.case_id != b.case_id


def test_case_round_trip() -> None:
    case = expand(SweepSpec(languages=("deu",), policies=("sorted",)))[-1]
    assert Case.from_dict(case.to_dict()) == case


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_sizes": (0,)}, "batch_sizes must be > 0"),
        ({"seq_lens": (-3,)}, "seq_lens must be > 0"),
        ({"seq_lens": (513,)}, "exceeds what xlmr-tiny allows"),
        ({"backends": ("tensorrt",)}, "unknown backend 'tensorrt'"),
        ({"models": ("nope",)}, "unknown model"),
        ({"device": "tpu"}, "unknown device"),
        ({"policies": ("random",)}, "unknown padding policy"),
        ({"threads": 0}, "threads must be > 0"),
        ({"models": ("xlmr-tiny", "xlmr-tiny")}, "listed twice"),
    ],
)
def test_bad_sweeps(changes: dict[str, object], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        expand(SweepSpec().replace(**changes))


def test_builtin_sweeps_load_by_name_and_expand() -> None:
    from harness.spec.config import BUILTIN_SWEEPS_DIR

    names = sorted(p.stem for p in BUILTIN_SWEEPS_DIR.glob("*.toml"))
    assert {"default", "smoke"} <= set(names)
    for name in names:
        sweep = load_sweep(Path(name))
        assert sweep.name == name
        assert expand(sweep), name
    assert load_sweep(REPO / "bench" / "ci" / "suite.toml").models


def test_unknown_sweep_name_lists_the_builtin_ones() -> None:
    with pytest.raises(HarnessError, match=r"unknown sweep 'nope' .*default, smoke"):
        load_sweep(Path("nope"))


def test_sweep_toml_errors(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('models = "xlmr-tiny"\n')
    with pytest.raises(HarnessError, match="models must be a list"):
        load_sweep(f)
    f.write_text('modles = ["xlmr-tiny"]\n')
    with pytest.raises(HarnessError, match="unknown key"):
        load_sweep(f)
    f.write_text('[measure]\nmax_time_s = "fast"\n')
    with pytest.raises(HarnessError, match="max_time_s must be"):
        load_sweep(f)


def test_bench_cpu_sweeps_load_and_expand() -> None:
    for path in sorted((REPO / "bench" / "cpu").glob("*.toml")):
        sweep = load_sweep(path)
        assert expand(sweep.replace(languages=())) if sweep.synthetic else sweep.languages, path


@pytest.mark.parametrize("name", ["seed-study-cpu", "seed-study-gpu"])
def test_the_seed_study_sweeps_load(name: str) -> None:
    """The cluster-scale sweeps the README points to parse, and hold the study's size."""
    from harness.spec.sweep import load_sweep

    sweep = load_sweep(Path(__file__).resolve().parent.parent / "bench" / "ray" / f"{name}.toml")
    assert len(sweep.models) == 10  # the baseline and nine intermediate tasks
    assert sweep.languages == ("xtreme",) and sweep.isolate
    groups = len(sweep.models) * len(sweep.backends)
    per_group = len(sweep.batch_sizes) * len(sweep.seq_lens) + 36 * len(sweep.policies)
    assert groups * per_group > 2000
