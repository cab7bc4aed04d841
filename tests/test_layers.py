"""The package's structure as ARCHITECTURE.md states it: layers import downwards only, and no
module imports itself back through others (an import circle), lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "scenefusion"
PACKAGE = "scenefusion"
#: Layer of each top-level module or package, lowest first (ARCHITECTURE.md's chain). A module
#: may import its own layer's modules and any lower layer, never a higher or a sideways one.
LAYERS: dict[str, int] = {
    "errors": 0, "registry": 1, "paths": 1, "files": 1, "cpu": 1, "runners": 2,
    "cache_integrity": 2, "data": 3, "features": 4, "models": 5, "evaluation": 6, "config": 7,
    "plan": 8, "grid": 9, "experiment": 10, "predict": 10, "timeline": 11, "explain": 11,
    "serve": 12, "cli": 13, "__main__": 14,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every scenefusion module ``path`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known and "." in t:
                t = t.rpartition(".")[0]
            if t in known and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layer(name: str) -> str:
    return name.split(".")[1] if "." in name else "(package)"


def test_every_top_level_module_has_a_layer():
    top = {layer(n) for n in modules()} - {"(package)"}
    assert top <= set(LAYERS), f"add to LAYERS (and ARCHITECTURE.md): {sorted(top - set(LAYERS))}"


def test_layers_import_downwards_only():
    wrong = []
    for name, targets in graph().items():
        if name == PACKAGE:
            continue
        for t in targets:
            if t == PACKAGE:
                continue
            mine, theirs = layer(name), layer(t)
            if mine != theirs and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{name} -> {t}")
    assert not wrong, "imports that go up or sideways: " + ", ".join(sorted(wrong))


def test_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for t in sorted(edges.get(node, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join([*stack[stack.index(t):], t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[node] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    assert not cycles, "import circles: " + "; ".join(cycles)


@pytest.mark.parametrize("lightweight", ["scenefusion.models", "scenefusion.errors"])
def test_importing_a_layer_does_not_load_what_it_does_not_use(lightweight):
    import subprocess
    import sys

    code = f"import sys, {lightweight}; print('librosa' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_long_module_says_why_it_is_long():
    """Modules stay small (one job each); one over 400 lines says why at the top of its
    docstring ("Long on purpose: ...")."""
    long = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > 400:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Long on purpose:" not in doc:
                long.append(f"{name} ({text.count(chr(10))} lines)")
    assert not long, "split these or say why they are long: " + ", ".join(long)
