"""The import graph of pyro_nrg: no cycles among its modules, no module importing another's ``_private`` names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyro_nrg"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
SOURCES = {**MODULES, **{f"tests.{p.stem}": p for p in sorted((ROOT / "tests").glob("*.py"))}}


def imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import in the file (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:  # `from pkg import mod` imports a module; `from mod import name` a name of it
                sub = f"{target}.{a.name}"
                found.append((sub, None, node.lineno) if sub in MODULES else (target, a.name, node.lineno))
    return [(m, n, line) for m, n, line in found if m == "pyro_nrg" or m.startswith("pyro_nrg.")]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_private_names_imported_across_modules(name: str) -> None:
    bad = [f"{SOURCES[name].relative_to(ROOT)}:{line} imports {target}.{n or ''}"
           for target, n, line in imports(name, SOURCES[name])
           if target != name and (is_private(n or "") or any(is_private(p) for p in target.split(".")))]
    assert not bad, "make the name public in its module (and document it), or keep it private there:\n" + "\n".join(bad)


def test_no_import_cycles_among_pyro_nrg_modules() -> None:
    graph = {m: sorted({t for t, _, _ in imports(m, p) if t in MODULES and t != m}) for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles (import from the defining module, not its package):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_no_module_is_shadowed_by_a_name_of_its_package() -> None:
    """``import pyro_nrg.a.b as m`` binds ``getattr(pyro_nrg.a, "b")``: a function or class of that name exported by
    the package would hide the module ``b`` (as ``distill`` once did)."""
    import importlib

    bad = []
    for name in MODULES:
        parent, _, leaf = name.rpartition(".")
        if not parent:
            continue
        module = importlib.import_module(name)
        if getattr(importlib.import_module(parent), leaf, None) is not module:
            bad.append(f"{parent}.{leaf} is a {type(getattr(importlib.import_module(parent), leaf)).__name__}")
    assert not bad, "rename the module or the exported name:\n" + "\n".join(bad)
