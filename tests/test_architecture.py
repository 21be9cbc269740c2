"""The layout's own rules: no import cycles inside steerscale, and modules with one job (short, or saying why not)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "steerscale"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every steerscale module `path` imports, at module level or inside functions (a cycle hidden in a function is still a cycle)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set()  # imports under `if TYPE_CHECKING:` never run, so they make no cycle
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    known = set(files)
    return {n: _imports(p, n, known) - {n} for n, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """Every edge counts, edges into a package's ``__init__`` too: a module that imports from its own package's
    ``__init__`` while that ``__init__`` imports it is a cycle Python only survives by import order."""
    assert _cycles(import_graph()) == []


def test_a_module_beside_a_same_named_folder_is_a_module(tmp_path):
    """``pkg/data.py`` beside a resource folder ``pkg/data/`` (no ``__init__.py``) is an ordinary module, and a
    cycle through it is seen: a package is a folder with an ``__init__.py``, not any folder of the same name."""
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "items.json").write_text("[]")
    (pkg / "data.py").write_text("def f():\n    from .guards import g\n")
    (pkg / "guards.py").write_text("def g():\n    from .data import f\n")
    files = {_module_name_in(p, tmp_path): p for p in pkg.rglob("*.py")}
    graph = {n: _imports(p, n, set(files)) - {n} for n, p in files.items()}
    assert _cycles(graph) == [["pkg.data", "pkg.guards"]]


def _module_name_in(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_a_submodule_importing_its_package_init_is_an_edge(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from . import __version__\n")
    assert _imports(p, "pkg.m", {"pkg", "pkg.m"}) == {"pkg"}
    p.write_text("from . import sub\n")
    assert _imports(p, "pkg.m", {"pkg", "pkg.m", "pkg.sub"}) == {"pkg.sub"}


def test_cycle_detector_sees_cycles_inside_functions(tmp_path):
    g = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(g) == [["a", "b"]]
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from .other import x\n")
    assert _imports(p, "pkg.m", {"pkg.m", "pkg.other"}) == {"pkg.other"}
    p.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .other import x\n")
    assert _imports(p, "pkg.m", {"pkg.m", "pkg.other"}) == set()


def test_modules_are_short_or_say_why():
    long = []
    for p in sorted(SRC.rglob("*.py")):
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            head = "\n".join(p.read_text(encoding="utf-8").splitlines()[:40]).lower()
            if "why this module is long" not in head:
                long.append(f"{p.relative_to(SRC)} ({n} lines)")
    assert long == [], f"modules over {MAX_LINES} lines without a 'Why this module is long:' note at the top: {long}"


def test_no_resource_folder_shadows_a_module():
    """A folder without ``__init__.py`` beside a module of the same name (``data/`` beside ``data.py``) reads as a
    package to people and tools; resource folders have names of their own."""
    clashes = [str(d.relative_to(SRC)) for d in SRC.rglob("*") if d.is_dir() and not (d / "__init__.py").exists()
               and d.with_suffix(".py").is_file()]
    assert clashes == []


def test_no_alias_modules():
    """A module that only imports names from elsewhere (an alias kept "for one release") is not a module with a
    job: every import points at the module that defines the name. Package ``__init__`` files may export names."""
    aliases = []
    for p in sorted(SRC.rglob("*.py")):
        if p.name in ("__init__.py", "__main__.py"):
            continue
        body = ast.parse(p.read_text(encoding="utf-8")).body
        own = [n for n in body if not (
            isinstance(n, (ast.Import, ast.ImportFrom))
            or (isinstance(n, ast.Expr) and isinstance(n.value, (ast.Constant, ast.Call)))  # docstring, warnings.warn
            or (isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"]))]
        if not own:
            aliases.append(str(p.relative_to(SRC)))
    assert aliases == [], f"alias modules (imports only): {aliases}"
