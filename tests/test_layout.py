"""The code base's layout rules, checked on the source (nothing under test is imported): no module of
aunet_lab over 600 lines, and no import cycle between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def module_files(root: Path, package: str = "aunet_lab") -> list[tuple[str, Path]]:
    """(module name, file) for every ``.py`` under ``root/package``; a package's ``__init__`` is named
    as the package (a name may have two files while a module is turned into a package)."""
    out = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def long_modules(root: Path, package: str = "aunet_lab", limit: int = MAX_LINES) -> list[tuple[str, int]]:
    counts = [(str(path.relative_to(root)), len(path.read_text().splitlines()))
              for _, path in module_files(root, package)]
    return [(name, n) for name, n in counts if n > limit]


def _imported(node: ast.AST, name: str, is_package: bool) -> list[str]:
    """The absolute module names an import statement names (a ``from X import y`` names ``X.y``
    too, which counts where that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1
        here = name.split(".") if is_package else name.split(".")[:-1]
        here = here[:len(here) - node.level + 1]
        base = ".".join(here + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path, package: str = "aunet_lab") -> dict[str, dict[str, list[str]]]:
    """module -> imported module -> where ("path:line"), for the imports of ``package``'s own modules,
    at module level and inside functions alike. An import names the longest known module it starts
    with; an import of a package that contains the importing module is left out (importing a
    submodule runs its packages' ``__init__`` first anyway)."""
    files = module_files(root, package)
    known = {name for name, _ in files}
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in known}
    for name, path in files:
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = set()
            for imported in _imported(node, name, is_package):
                parts = imported.split(".")
                prefixes = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
                target = next((p for p in prefixes if p in known), None)
                if target is None or target == name or name.startswith(target + "."):
                    continue
                targets.add(target)
            for target in targets:
                graph[name].setdefault(target, []).append(f"{path.relative_to(root)}:{node.lineno}")
    return graph


def import_cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycles(graph: dict[str, dict[str, list[str]]], cycles: list[list[str]]) -> str:
    lines = []
    for members in cycles:
        lines.append("cycle: " + ", ".join(members))
        lines += [f"  {src} -> {dst} ({', '.join(graph[src][dst])})"
                  for src in members for dst in sorted(graph[src]) if dst in members]
    return "\n".join(lines)


def test_no_module_is_over_600_lines():
    offenders = long_modules(ROOT)
    assert not offenders, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for p, n in offenders)


def test_no_import_cycles():
    graph = import_graph(ROOT)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles between aunet_lab modules:\n" + describe_cycles(graph, cycles)


def test_an_import_cycle_is_found(tmp_path):
    files = {
        "__init__.py": "",
        "a.py": "import os\n\ndef f():\n    from aunet_lab import b\n    return b\n",
        "b.py": "import aunet_lab.a\n",
        "c.py": "from aunet_lab.a import f\n",  # imports the cycle, is not part of it
        "sub/__init__.py": "from aunet_lab.sub.d import g\n",
        "sub/d.py": "from aunet_lab.sub import e\n\ndef g():\n    return e\n",  # its own package: no edge
        "sub/e.py": "from . import d\n",
    }
    for rel, text in files.items():
        path = tmp_path / "aunet_lab" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    graph = import_graph(tmp_path)
    assert graph["aunet_lab.sub.d"] == {"aunet_lab.sub.e": ["aunet_lab/sub/d.py:1"]}
    cycles = import_cycles(graph)
    assert cycles == [["aunet_lab.a", "aunet_lab.b"], ["aunet_lab.sub.d", "aunet_lab.sub.e"]], cycles
    message = describe_cycles(graph, cycles)
    assert "aunet_lab.a -> aunet_lab.b (aunet_lab/a.py:4)" in message
    assert "aunet_lab.b -> aunet_lab.a (aunet_lab/b.py:1)" in message
