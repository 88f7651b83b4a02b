"""The package layout's invariants (ARCHITECTURE.md): no import circles, deferred imports included, and no
folder holding most of the package."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "bea"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, modules: dict) -> set[str]:
    """Every bea module `name` imports, at any depth of its code (deferred imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from .pkg import sub` imports the submodule when there is one, else a name of the package.
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name}
    return out


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle by itself; a submodule that imports
    # its package (or anything that leads back to itself) is.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_folder_holds_most_of_the_package():
    lines = {p: len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    total = sum(lines.values())
    for folder in [p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")]:
        share = sum(n for p, n in lines.items() if folder in p.parents) / total
        assert share <= 0.42, f"{folder.name}/ holds {share:.0%} of the package's lines"
