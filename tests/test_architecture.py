"""The layers of docs/architecture.md, checked: a module imports only from its own layer or the ones below,
and no two modules import each other (lazy imports inside functions count too; imports for type checking
only do not)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from movierec.models.registry import REGISTRY
from movierec.testing import ModelContract

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module belongs to the first prefix that matches its dotted name
LAYERS: list[tuple[str, ...]] = [
    ("movierec.errors", "movierec.fsutil", "movierec._optional", "movierec._html", "movierec.data"),
    ("movierec.evaluation",),
    ("movierec.models", "movierec.training"),
    ("movierec.artifacts", "movierec.fitting"),
    ("movierec.similar", "movierec.segments", "movierec.eda", "movierec.comparison"),
    ("movierec.runs",),
    ("movierec.experiments", "movierec.tuning", "movierec.testing"),
    ("movierec.study", "movierec.serving"),
    ("movierec.cli", "movierec.__main__"),
]
TOP = ("movierec",)  # the package's own __init__ (a lazy convenience loader) sits above nothing in particular


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "movierec").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """movierec modules imported anywhere in the file (resolved to the longest known module name)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # imports for type annotations only never run
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("movierec") and t != name:
                found.add(t)
    return found


def _layer(name: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{name} is in no layer of docs/architecture.md: add it to LAYERS")


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def test_every_module_imports_only_its_layer_or_below() -> None:
    wrong = []
    for name, deps in _graph().items():
        if name in TOP:
            continue
        for dep in deps:
            if dep not in TOP and _layer(dep) > _layer(name):
                wrong.append(f"{name} (layer {_layer(name)}) imports {dep} (layer {_layer(dep)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_imports_another_modules_private_names() -> None:
    """``from movierec.x import _name`` only inside movierec.x itself (a helper several layers borrow belongs
    where they can all see it, under a public name)."""
    known = set(_modules())
    wrong = []
    for name, path in _modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base in known and base != name:
                wrong += [f"{name} imports {base}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package's __init__ re-exporting its own submodules is not a cycle of meaning
    edges = {n: {d for d in deps if not (n.startswith(d + ".") or d.startswith(n + "."))} for n, deps in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in edges.get(n, ()):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*stack[stack.index(d):], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    assert not cycles, "\n".join(cycles)


# -- the documented example of adding a model, run through the whole contract ------------------------------
def _documented_example() -> tuple[type, object]:
    """The model module and the registry line shown in docs/architecture.md, executed as written."""
    import re
    import sys
    import types

    from movierec.models.registry import ModelEntry

    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    module_code = next(b for b in blocks if b.startswith("# src/movierec/models/random_walk.py"))
    entry_code = next(b for b in blocks if "ModelEntry(" in b and b.startswith("# src/movierec/models/registry.py"))
    module = types.ModuleType("movierec_doc_random_walk")
    sys.modules[module.__name__] = module
    exec(compile(module_code, "docs/architecture.md", "exec"), module.__dict__)
    entry = eval(entry_code.split("\n", 1)[1].strip().rstrip(","), {"ModelEntry": ModelEntry})
    entry = ModelEntry(entry.name, f"{module.__name__}:RandomWalk", entry.family, entry.summary, entry.combines)
    return module.RandomWalk, entry


_RandomWalk, _ENTRY = _documented_example()


class TestDocumentedExample(ModelContract):
    model_factory = _RandomWalk

    @pytest.fixture(autouse=True)
    def _registered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(REGISTRY, _ENTRY.name, _ENTRY)
