from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.spec.config import ArchSpec, MeasureSpec, ModelSpec, arch_from_config, resolve_model


def test_builtin_specs_have_xlmr_hyperparameters() -> None:
    base = resolve_model("xlmr-base")
    assert (base.arch.layers, base.arch.hidden, base.arch.ffn, base.arch.heads) == (
        12,
        768,
        3072,
        12,
    )
    large = resolve_model("xlmr-large")
    assert (large.arch.layers, large.arch.hidden, large.arch.ffn, large.arch.heads) == (
        24,
        1024,
        4096,
        16,
    )
    for spec in (base, large):
        assert (spec.arch.vocab, spec.arch.max_positions, spec.arch.type_vocab) == (250002, 514, 1)
        assert spec.arch.max_seq_len == 512


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("xlmr-base-nli", "sequence-classification"),
        ("xlmr-base-qa", "question-answering"),
        ("xlmr-base-ner", "token-classification"),
        ("xlmr-base-mc", "multiple-choice"),
    ],
)
def test_head_specs(name: str, head: str) -> None:
    assert resolve_model(name).head == head


def test_multiple_choice_multiplies_sequences() -> None:
    assert resolve_model("xlmr-base-mc").choices == 4
    assert resolve_model("xlmr-base").choices == 1


def test_fingerprint_depends_on_weights_not_description() -> None:
    a = ModelSpec(name="a", source="random-init", description="x")
    b = ModelSpec(name="a", source="random-init", description="y")
    c = ModelSpec(name="a", source="random-init", seed=1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_hub_id_and_unknown_name() -> None:
    spec = resolve_model("someone/xlm-roberta-large-xnli")
    assert spec.source == "someone/xlm-roberta-large-xnli"
    with pytest.raises(HarnessError, match="unknown model 'nope'.*xlmr-base"):
        resolve_model("nope")


def test_missing_local_dir(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no such checkpoint directory"):
        resolve_model(str(tmp_path / "missing" / "ckpt"))


def test_local_dir_reads_arch_and_refuses_other_families(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text(
        json.dumps(
            {
                "model_type": "xlm-roberta",
                "num_hidden_layers": 3,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_attention_heads": 4,
                "vocab_size": 100,
                "max_position_embeddings": 66,
            }
        )
    )
    spec = resolve_model(str(good))
    assert spec.arch.layers == 3 and spec.arch.max_seq_len == 64
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(HarnessError, match="not an XLM-R checkpoint"):
        resolve_model(str(bert))


def test_spec_validation() -> None:
    with pytest.raises(HarnessError, match="unknown head"):
        ModelSpec(name="x", source="random-init", head="generation")
    with pytest.raises(HarnessError, match="must divide"):
        ArchSpec(hidden=100, heads=12)
    with pytest.raises(HarnessError, match="layers must be > 0"):
        ArchSpec(layers=0)
    with pytest.raises(HarnessError, match="must be int"):
        ArchSpec(layers=True)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="unknown key"):
        ModelSpec.from_dict({"name": "x", "source": "random-init", "heads": 3})
    with pytest.raises(HarnessError, match="must not exceed"):
        MeasureSpec(min_iters=10, max_iters=5)
    with pytest.raises(HarnessError, match="> 0"):
        MeasureSpec(max_time_s=0)


def test_arch_from_config_missing_key() -> None:
    with pytest.raises(HarnessError, match="lacks num_hidden_layers"):
        arch_from_config({"model_type": "xlm-roberta"}, where="x")


def test_bad_toml(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("name = [unclosed")
    with pytest.raises(HarnessError, match="not valid TOML"):
        resolve_model(str(f))
