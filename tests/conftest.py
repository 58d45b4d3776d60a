from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_TATOEBA = REPO.parent / "shared" / "corpora" / "tatoeba"

torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built models, exports and tokenizers, shared by the whole session (built once)."""
    return tmp_path_factory.mktemp("cache")


#: Languages of several scripts: Latin, RTL (Hebrew, Arabic), CJK without spaces, Thai, Devanagari.
SMALL_LANGS = ("deu", "heb", "ara", "jpn", "cmn", "tha", "hin")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 120 pairs of a few real Tatoeba languages, in the published layout."""
    if not SHARED_TATOEBA.is_dir():
        pytest.skip("shared Tatoeba corpus not present")
    out = tmp_path_factory.mktemp("tatoeba")
    for lang in SMALL_LANGS:
        for side in (lang, "eng"):
            name = f"tatoeba.{lang}-eng.{side}"
            lines = (SHARED_TATOEBA / name).read_text(encoding="utf-8").splitlines()[:120]
            (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_TATOEBA", raising=False)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
