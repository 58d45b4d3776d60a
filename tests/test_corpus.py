from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.inputs.corpus import (
    XTREME_LANGUAGES,
    available_languages,
    check_languages,
    fetch_tatoeba,
    read_pairs,
    resolve_corpus,
)


def _write(d: Path, lang: str, text: list[str], eng: list[str]) -> None:
    (d / f"tatoeba.{lang}-eng.{lang}").write_text("\n".join(text) + "\n", encoding="utf-8")
    (d / f"tatoeba.{lang}-eng.eng").write_text("\n".join(eng) + "\n", encoding="utf-8")


def test_xtreme_has_36_languages() -> None:
    assert len(XTREME_LANGUAGES) == 36
    assert "cmn" in XTREME_LANGUAGES and "pes" in XTREME_LANGUAGES


def test_code_mapping(small_corpus: Path) -> None:
    assert check_languages(small_corpus, ["de", "ja", "heb", "zh", "ar+th"]) == [
        "deu",
        "jpn",
        "heb",
        "cmn",
        "ara+tha",
    ]


def test_unknown_language_lists_available(small_corpus: Path) -> None:
    with pytest.raises(HarnessError, match="unknown language 'xx'; available: amh, ara, cmn, deu"):
        check_languages(small_corpus, ["xx"])


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    _write(tmp_path, "abc", ["eins", "", "drei", "vier"], ["one", "two", "", "four"])
    pairs = read_pairs(tmp_path, "abc")
    assert pairs.text == ("eins", "vier") and pairs.english == ("one", "four")
    assert pairs.blank_skipped == 2


def test_measure_and_train_halves_are_disjoint(small_corpus: Path) -> None:
    pairs = read_pairs(small_corpus, "deu")
    measure, train = pairs.split("measure"), pairs.split("train")
    assert len(measure.text) + len(train.text) == len(pairs.text)
    assert measure.text == pairs.text[0::2] and train.text == pairs.text[1::2]


@pytest.mark.parametrize(
    ("text", "eng", "message"),
    [
        (["a", "b"], ["a"], "not parallel"),
        ([], [], "no sentences"),
        (["", "  "], ["", ""], "no sentences"),
    ],
)
def test_bad_corpus_files(tmp_path: Path, text: list[str], eng: list[str], message: str) -> None:
    _write(tmp_path, "bad", text, eng)
    with pytest.raises(HarnessError, match=message):
        read_pairs(tmp_path, "bad")


def test_missing_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="corpus file not found"):
        read_pairs(tmp_path, "zzz")
    (tmp_path / "tatoeba.lat-eng.lat").write_bytes(b"\xff\xfe bad")
    (tmp_path / "tatoeba.lat-eng.eng").write_text("ok\n")
    with pytest.raises(HarnessError, match="not UTF-8"):
        read_pairs(tmp_path, "lat")


def test_missing_corpus_dir(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="corpus directory not found"):
        resolve_corpus(tmp_path / "nope")


def test_any_code_in_the_layout_works(tmp_path: Path) -> None:
    _write(tmp_path, "amh", ["ሰላም ነው።"], ["It is peace."])  # Ethiopic script
    assert available_languages(tmp_path) == ["amh"]
    assert read_pairs(tmp_path, "amh").text == ("ሰላም ነው።",)


def test_fetch_uses_the_published_layout(tmp_path: Path, small_corpus: Path) -> None:
    dest = tmp_path / "dl"
    written = fetch_tatoeba(dest, ["heb"], base_url=small_corpus.as_uri())
    assert sorted(p.name for p in written) == ["tatoeba.heb-eng.eng", "tatoeba.heb-eng.heb"]
    assert read_pairs(dest, "heb") == read_pairs(small_corpus, "heb")
    assert fetch_tatoeba(dest, ["heb"], base_url=small_corpus.as_uri()) == []  # cached
    with pytest.raises(HarnessError, match="cannot download"):
        fetch_tatoeba(dest, ["xyz"], base_url=small_corpus.as_uri())


def test_corpus_resolution_never_looks_beside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what the user gave ($HARNESS_TATOEBA, --corpus) or the download cache counts."""
    from harness.inputs.corpus import corpus_cache_dir, find_corpus

    monkeypatch.delenv("HARNESS_TATOEBA", raising=False)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert find_corpus(None) is None
    with pytest.raises(HarnessError, match="harness fetch-tatoeba"):
        resolve_corpus(None)
    corpus_cache_dir().mkdir(parents=True)
    _write(corpus_cache_dir(), "deu", ["Hallo."], ["Hello."])
    assert find_corpus(None) == corpus_cache_dir()
    monkeypatch.setenv("HARNESS_TATOEBA", str(tmp_path / "missing"))
    with pytest.raises(HarnessError, match="HARNESS_TATOEBA=.*not found"):
        find_corpus(None)


def test_fixture_corpus_covers_eight_scripts(small_corpus: Path) -> None:
    assert available_languages(small_corpus) == [
        "amh", "ara", "cmn", "deu", "heb", "hin", "jpn", "rus", "tha",
    ]  # fmt: skip
    for lang in available_languages(small_corpus):
        pairs = read_pairs(small_corpus, lang)
        assert len(pairs.text) == len(pairs.english) == 32 and pairs.blank_skipped == 0


@pytest.mark.full_corpus
def test_the_real_corpus_reads_in_every_language(full_corpus: Path) -> None:
    langs = available_languages(full_corpus)
    assert len(langs) >= 100
    assert check_languages(full_corpus, list(XTREME_LANGUAGES)) == list(XTREME_LANGUAGES)
    for lang in langs:
        pairs = read_pairs(full_corpus, lang)
        assert pairs.text and len(pairs.text) == len(pairs.english)
