"""The import graph of `src/graftlm`, read from the source: no circle between modules (imports inside
functions count too), and only the command line (`cli/`, `__main__`) imports `graftlm.cli`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the graftlm modules it imports (`from graftlm.a import b` counts as `graftlm.a.b` when
    that is a module, else `graftlm.a`); the package `graftlm` itself is left out."""
    files = {module_name(p, src): p for p in sorted((src / "graftlm").rglob("*.py"))}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name if name and name != "graftlm" else None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                names = [f"{base}.{a.name}" for a in node.names]
            for name in names:
                target = resolve(name)
                if target is not None and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_cli(module: str) -> bool:
    return module == "graftlm.cli" or module.startswith("graftlm.cli.")


def climbing_imports(graph: dict[str, set[str]]) -> list[str]:
    """Modules outside the command line that import it."""
    return sorted(m for m, targets in graph.items()
                  if not _is_cli(m) and m != "graftlm.__main__" and any(_is_cli(t) for t in targets))


def test_no_circle_between_modules() -> None:
    graph = import_graph()
    assert "graftlm.taxonomy.load" in graph and "graftlm.taxonomy.diff" in graph["graftlm.taxonomy.load"]
    assert cycles(graph) == []


def test_only_the_command_line_imports_the_cli() -> None:
    assert climbing_imports(import_graph()) == []


def test_the_checks_find_a_circle_and_a_climbing_import(tmp_path: Path) -> None:
    pkg = tmp_path / "graftlm"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("from graftlm import a\n")
    (pkg / "a.py").write_text("def f():\n    from graftlm.b import g\n")
    (pkg / "b.py").write_text("from . import a\nfrom graftlm.cli import main\n")
    graph = import_graph(tmp_path)
    assert graph == {"graftlm": set(), "graftlm.a": {"graftlm.b"}, "graftlm.b": {"graftlm.a", "graftlm.cli"},
                     "graftlm.cli": {"graftlm.a"}}
    assert cycles(graph) == [["graftlm.a", "graftlm.b", "graftlm.cli"]]
    assert climbing_imports(graph) == ["graftlm.b"]
