"""The harness's cache folder: built models, exports, tokenizers, weight statistics and a
downloaded corpus — entries that check themselves.

``$HARNESS_CACHE`` when set, else ``~/.cache/xlmr-harness``. Nothing here creates it.

Every entry is written with a manifest (``*.manifest.json``): each file's size, modification
time and SHA-256. Before an entry is used its files are compared with the manifest by size
and modification time (cheap, and what a truncated or rewritten file changes); an entry that
does not match is removed and built again, with a :class:`CacheRebuiltWarning` saying which
and why. ``harness cache verify`` also compares the hashes. Entries from before manifests
existed are adopted: their manifest is written the first time they are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST_SUFFIX",
    "CacheEntry",
    "CacheRebuiltWarning",
    "check",
    "default_cache_dir",
    "entries",
    "entry_files",
    "manifest_of",
    "seal",
    "seal_entry",
    "usable",
]

MANIFEST_SUFFIX = ".manifest.json"


class CacheRebuiltWarning(UserWarning):
    """A cache entry did not match its manifest and is built again (the CLI prints it)."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "xlmr-harness"))


def manifest_of(path: Path) -> Path:
    """The manifest of an entry: inside a folder entry, beside a file entry."""
    if path.is_dir():
        return path / f"entry{MANIFEST_SUFFIX}"
    return path.with_name(path.name + MANIFEST_SUFFIX)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seal(manifest: Path, files: Iterable[Path]) -> None:
    """Write ``manifest`` for ``files`` (paths relative to the manifest's folder)."""
    root = manifest.parent
    listing = {
        str(f.relative_to(root)): {
            "bytes": f.stat().st_size,
            "mtime_ns": f.stat().st_mtime_ns,
            "sha256": _sha256(f),
        }
        for f in sorted(files)
    }
    tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"files": listing}, indent=1))
    os.replace(tmp, manifest)


def _fmt(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def check(manifest: Path, *, hashes: bool = False) -> str | None:
    """Why the files of ``manifest`` do not match it (None: they do)."""
    try:
        listing = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its manifest {manifest.name} is unreadable"
    for name, want in listing.items():
        f = manifest.parent / name
        try:
            st = f.stat()
        except OSError:
            return f"{name} is missing"
        if st.st_size != want["bytes"]:
            return f"{name} is {_fmt(st.st_size)}, was written as {_fmt(want['bytes'])}"
        if st.st_mtime_ns != want["mtime_ns"] and (hashes or _sha256(f) != want["sha256"]):
            return f"{name} changed since it was written"
        if hashes and _sha256(f) != want["sha256"]:
            return f"{name} does not match its SHA-256"
    return None


def entry_files(entry: Path) -> list[Path]:
    """The files of an entry: everything in a folder entry; a file entry, the files named
    after it (external weights) and its facts (``NAME.json``)."""
    if entry.is_dir():
        return [f for f in entry.rglob("*") if f.is_file() and not f.name.endswith(MANIFEST_SUFFIX)]
    files = [
        f
        for f in entry.parent.glob(entry.name + "*")
        if f.is_file() and not f.name.endswith(MANIFEST_SUFFIX)
    ]
    facts = entry.with_suffix(".json")
    return files + ([facts] if facts.is_file() and facts != entry else [])


def seal_entry(entry: Path) -> None:
    """Write the manifest of a freshly built entry (before it is renamed into place, or
    right after a file entry is written)."""
    seal(manifest_of(entry), entry_files(entry))


def usable(
    entry: Path, required: Iterable[Path], what: str, files: Iterable[Path] | None = None
) -> bool:
    """Whether the cached ``entry`` (its ``required`` files present) may be used. An entry
    that does not match its manifest, or that exists without all its required files, is
    removed (a :class:`CacheRebuiltWarning` says why) and the caller builds it again; a
    complete one without a manifest (written before manifests) is adopted with ``files``
    (default: :func:`entry_files`)."""
    required = list(required)
    manifest = manifest_of(entry) if entry.exists() else None
    missing = [f for f in required if not f.is_file()]
    if missing:
        if entry.exists():
            _rebuild(entry, what, f"{missing[0].name} is missing")
        return False
    assert manifest is not None
    if not manifest.is_file():
        with contextlib.suppress(OSError):  # a read-only cache: used as it is
            seal(manifest, list(files) if files is not None else entry_files(entry))
        return True
    problem = check(manifest)
    if problem is None:
        return True
    _rebuild(entry, what, problem)
    return False


def _rebuild(entry: Path, what: str, problem: str) -> None:
    warnings.warn(
        CacheRebuiltWarning(f"cache: {what} at {entry} is damaged ({problem}): building it again"),
        stacklevel=3,
    )
    remove(entry)


def remove(entry: Path) -> None:
    """Remove an entry and its manifest (a folder, or a file with the files named after it).
    A folder is renamed aside first, so no other process sees it half deleted."""
    if entry.is_dir():
        aside = entry.with_name(f".removing-{entry.name}-{os.getpid()}")
        try:
            os.rename(entry, aside)
        except OSError:
            aside = entry
        shutil.rmtree(aside, ignore_errors=True)
        return
    for f in entry.parent.glob(entry.name + "*"):
        f.unlink(missing_ok=True)
    entry.with_suffix(".json").unlink(missing_ok=True)


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the cache, as ``harness cache`` lists it."""

    kind: str
    path: Path
    bytes: int
    manifest: Path | None

    def problem(self, *, hashes: bool = True) -> str | None:
        if self.manifest is None:
            return None
        return check(self.manifest, hashes=hashes)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def entries(cache: Path) -> list[CacheEntry]:
    """Every entry under ``cache``: checkpoints built offline, ONNX graphs (an export and each
    rewrite of it), trained tokenizers, weight statistics, the downloaded corpus."""
    out: list[CacheEntry] = []

    def folder_entries(kind: str, root: Path) -> None:
        for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            m = manifest_of(d)
            out.append(CacheEntry(kind, d, _size(d), m if m.is_file() else None))

    folder_entries("checkpoint", cache / "models")
    onnx = cache / "onnx"
    for d in sorted(p for p in onnx.iterdir() if p.is_dir()) if onnx.is_dir() else []:
        m = manifest_of(d)
        out.append(CacheEntry("onnx export", d, _size(d), m if m.is_file() else None))
        for variant in sorted(d.glob(f"*.onnx{MANIFEST_SUFFIX}")):
            graph = variant.with_name(variant.name[: -len(MANIFEST_SUFFIX)])
            size = sum(f.stat().st_size for f in d.glob(graph.stem + "*") if f.is_file())
            out.append(CacheEntry("onnx rewrite", graph, size, variant))
    toks = cache / "tokenizers"
    for f in sorted(toks.glob("*.model")) if toks.is_dir() else []:
        m = manifest_of(f)
        out.append(CacheEntry("tokenizer", f, f.stat().st_size, m if m.is_file() else None))
    stats = cache / "weight-stats"
    if stats.is_dir():
        files = list(stats.glob("*.json"))
        out.append(
            CacheEntry("weight statistics", stats, sum(f.stat().st_size for f in files), None)
        )
    if (cache / "tatoeba").is_dir():
        out.append(CacheEntry("corpus", cache / "tatoeba", _size(cache / "tatoeba"), None))
    return out
