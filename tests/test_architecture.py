"""Walls in the house: data flows one way through the layers below (README, "Where things
are"), so no import — at module level or inside a function — runs back up; the library never
imports the CLI; and module-level imports form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "harness"
FRONT = ("harness.cli", "harness.commands", "harness.__main__")

#: Lowest first. A module may import its own layer and the layers below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.errors", "harness.quiet", "harness.cache", "harness.records.types"),
    ("harness.spec",),  # what is measured: frozen specs
    ("harness.stats",),  # pure arithmetic on timings
    ("harness.records", "harness.notices"),  # versioned records, run directories
    ("harness.checkpoints",),  # loading checkpoints safely
    ("harness.inputs",),  # synthetic and real-text batches, tokenizers
    ("harness.training",),  # intermediate-task training (checkpoints from inputs)
    ("harness.measure",),  # clocks, memory, GPU facts, parity
    ("harness.backends",),  # eager, TorchScript, ONNX Runtime, compile, CUDA graphs
    ("harness.execution",),  # plan → cases → runner → records, worker processes
    ("harness.comparison",),  # interleaved arms, estimates, verdicts, the gate
    ("harness.serving",),  # serve-bench under LoadGen
    ("harness.render",),  # reports: the only place that formats
    ("harness.api",),  # the Python API
    ("harness.commands", "harness.cli", "harness.__main__", "harness"),  # the CLI
)


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[1]):
                best = (i, len(n))
    return best[0] if best else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("harness"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("harness"))
    return out


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_library_never_imports_the_cli() -> None:
    for name, path in _modules().items():
        if name.startswith(FRONT):
            continue
        bad = {i for i in _imports(path, top_level_only=False) if i.startswith(FRONT)}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_import_cycle_at_module_level() -> None:
    modules = _modules()
    graph = {
        name: {i for i in _imports(path, top_level_only=True) if i in modules and i != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_every_module_has_a_layer() -> None:
    lonely = [
        name
        for name in _modules()
        if name != "harness" and _layer(name) == len(LAYERS) - 1 and not name.startswith(FRONT)
    ]
    assert not lonely, f"modules in no layer of LAYERS: {lonely}"


def test_no_import_runs_back_up_the_layers() -> None:
    bad = []
    for name, path in _modules().items():
        mine = _layer(name)
        for target in _imports(path, top_level_only=False):
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert not bad, "\n".join(sorted(set(bad)))
