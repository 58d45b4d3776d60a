from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from harness.checkpoints.load import build_random_init, load_checkpoint, preflight
from harness.errors import HarnessError
from harness.spec.config import ArchSpec, ModelSpec, resolve_model

ARCH = ArchSpec(layers=1, hidden=16, ffn=32, heads=2, vocab=300, max_positions=40)


def _spec(**kw: object) -> ModelSpec:
    return ModelSpec(**{"name": "c", "source": "random-init", "arch": ARCH, **kw})  # type: ignore[arg-type]


def test_random_init_is_cached_and_deterministic(cache_dir: Path) -> None:
    a = load_checkpoint(_spec(), cache_dir)
    b = load_checkpoint(_spec(), cache_dir)
    assert a.path == b.path and (a.path / "model.safetensors").is_file()
    assert a.weights.sha256 == b.weights.sha256
    other = load_checkpoint(_spec(seed=7), cache_dir)
    assert other.weights.sha256 != a.weights.sha256
    assert a.weights.n_params == sum(p.numel() for p in a.model.parameters())
    assert a.weights.dtypes == ("float32",)


def test_weight_numerics_count_zeros_and_subnormals(cache_dir: Path) -> None:
    ckpt = load_checkpoint(_spec(name="numerics"), cache_dir)
    base_zero = ckpt.weights.zero_share
    from harness.checkpoints.weights import weight_stats

    with torch.no_grad():
        w = ckpt.model.model.encoder.layer[0].intermediate.dense.weight
        w[0, :10] = 0.0
        w[1, :10] = 1e-40  # subnormal in float32
    stats = weight_stats(ckpt.model)
    total = sum(t.numel() for t in ckpt.model.state_dict().values() if t.is_floating_point())
    assert stats.zero_share == pytest.approx(base_zero + 10 / total, abs=1e-9)
    assert stats.subnormal_share == pytest.approx(10 / total)
    assert stats.sha256 != ckpt.weights.sha256


def test_local_directory_loads_like_the_spec(cache_dir: Path) -> None:
    path = build_random_init(_spec(head="question-answering"), cache_dir)
    spec = resolve_model(str(path))
    assert spec.head == "question-answering"
    ckpt = load_checkpoint(spec, cache_dir)
    assert ckpt.arch == ARCH


def test_pickle_refused_unless_allowed(cache_dir: Path, tmp_path: Path) -> None:
    src = build_random_init(_spec(), cache_dir)
    pkl = tmp_path / "pkl"
    pkl.mkdir()
    shutil.copy(src / "config.json", pkl / "config.json")
    model = load_checkpoint(_spec(), cache_dir).model.model
    torch.save(model.state_dict(), pkl / "pytorch_model.bin")
    spec = ModelSpec(name="pkl", source=str(pkl))
    with pytest.raises(HarnessError, match="pickle.*--allow-pickle"):
        load_checkpoint(spec, cache_dir)
    assert load_checkpoint(spec, cache_dir, allow_pickle=True).weights.n_params > 0


def test_truncated_weights_are_a_clear_error(cache_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(build_random_init(_spec(), cache_dir), broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(HarnessError, match="weights file is truncated"):
        load_checkpoint(ModelSpec(name="b", source=str(broken)), cache_dir)


def test_corrupt_config(tmp_path: Path, cache_dir: Path) -> None:
    d = tmp_path / "cfg"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    with pytest.raises(HarnessError, match="not valid JSON"):
        load_checkpoint(ModelSpec(name="x", source=str(d)), cache_dir)


def test_hub_offline_is_one_clear_line() -> None:
    spec = ModelSpec(name="hub", source="FacebookAI/xlm-roberta-base")
    with pytest.raises(HarnessError, match="'FacebookAI/xlm-roberta-base' is not cached"):
        preflight(spec)
