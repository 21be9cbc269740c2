"""The "house" numbers of a steerscale source tree: rooms, floors, import edges, cycles, alias modules, arrows back up.

Usage:
    python scripts/architecture_numbers.py [TREE ...]        (default: src/steerscale)

A TREE is a package folder (``src/steerscale``, or ``/tmp/old/src/steerscale`` of a ``git worktree add``) or a git
revision (``7df14f9``), whose ``src/steerscale`` is read through ``git archive`` into a temporary folder. Several
trees give one Markdown table with a column each, then the cycles, alias modules and arrows back up of each tree.
Standard library only; nothing is imported from the tree, every file is read with ``ast``.

Definitions (the same as tests/test_architecture.py):
- a *package* is a folder with an ``__init__.py`` (a resource folder without one is not; files in it are not read);
  a *module* ("room") is any ``.py`` file in a package, its ``__init__.py`` included;
- *floors*: packages, the root included; *top-level modules*: ``.py`` files directly in the root, ``__init__`` included;
- an *import edge* is one (importer, imported module) pair inside the tree: imports inside functions count,
  imports under ``if TYPE_CHECKING:`` do not; ``from pkg import sub`` is an edge to the module ``pkg.sub``,
  ``from mod import name`` an edge to ``mod`` (a package's ``__init__`` when ``mod`` is a package);
- an *import cycle* is a strongly connected component of more than one module;
- an *alias module* is a module other than ``__init__``/``__main__`` whose body is only imports (plus a docstring,
  a call such as ``warnings.warn``, ``__all__``), at least one;
- an *arrow running back up* is an edge from a module of one stage to a module of a later stage in ``ORDER`` below.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# The pipeline, first to last: a module may import from its own stage and from earlier ones. A module's stage is the
# first folder under the root; the leaf modules at the top (errors, _version, stats) are stage "base"; config.py is a
# stage of its own after engines (it takes its choices from where they are defined: core's POSITIONS, TEMPLATES,
# NORMALIZATIONS and engines' ENGINES; nothing in core or engines imports config); the root __init__ (the public
# API, which re-exports names from every stage) is last. io comes after core and config by what it imports
# (guards -> core.prompts, interop -> core.vectors and config; nothing in engines imports io).
ORDER = [("base",), ("io",), ("core",), ("engines",), ("config",), ("sweep",), ("measures", "openended"),
         ("interventions",), ("analysis",), ("scaling",), ("report",), ("showcase",), ("reproduce",), ("cli",),
         ("api",)]
BASE = {"errors", "_version", "stats", "registry"}

# Where each module of an older tree (before the folder per stage) belongs, so older trees are judged by the same
# order: the old -> new module table of the move, plus the alias modules the tree before that still had.
OLD_HOME = {
    "models": "core.models", "prompts": "core.prompts", "data": "core.data", "batching": "core.batching",
    "steering": "core.steering", "activations": "core.activations", "vectors": "core.vectors",
    "evaluate": "core.evaluate", "letters": "core.letters", "pairs": "core.pairs", "vector_ops": "core.vector_ops",
    "autobatch": "core.autobatch", "catalog": "core.catalog",
    "sweep": "sweep.run", "units": "sweep.units", "plan": "sweep.plan", "tables": "sweep.tables",
    "backends": "sweep.backends", "screening": "sweep.screening",
    "store": "io.store", "tensorio": "io.tensorio", "results": "io.results", "guards": "io.guards",
    "interop": "core.interop", "outputs": "io.outputs",
    "measures.openended_run": "openended.run", "measures.openended_tables": "openended.tables",
    "measures.openended_store": "openended.store",
    "interventions": "interventions.ablation", "orthogonalization": "interventions.orthogonalize",
    "ablation_recipe": "interventions.recipe",
    "showcase": "showcase.run", "showcase_config": "showcase.config", "showcase_plots": "showcase.plots",
    "showcase_control": "showcase.control", "verdicts": "analysis.verdicts",
    "reproduce": "reproduce.run", "reproduce_config": "reproduce.config",
    "reproduce_reliability": "reproduce.reliability", "reproduce_report": "reproduce.report",
    # alias modules of the older trees, by where their names were defined
    "fast": "engines.fast", "hfcompat": "engines.hfcompat", "openended": "openended.run",
    "openended_store": "openended.store", "httpclient": "measures.httpclient",
    "measures.openended_config": "config",
}
RANK = {stage: i for i, group in enumerate(ORDER) for stage in group}


@dataclass
class Tree:
    label: str
    root: Path
    files: dict[str, Path] = field(default_factory=dict)  # dotted module name (root's name first) -> file
    lines: dict[str, int] = field(default_factory=dict)
    graph: dict[str, set[str]] = field(default_factory=dict)


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``: folders are walked only while they have an ``__init__.py``."""
    out: dict[str, Path] = {}

    def walk(folder: Path, prefix: list[str]) -> None:
        for p in sorted(folder.iterdir()):
            if p.is_dir() and (p / "__init__.py").is_file():
                walk(p, prefix + [p.name])
            elif p.suffix == ".py" and p.is_file():
                name = prefix if p.stem == "__init__" else prefix + [p.stem]
                out[".".join(name)] = p
    if not (root / "__init__.py").is_file():
        sys.exit(f"{root}: not a package (no __init__.py)")
    walk(root, [root.name])
    return out


def typing_only(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of the tree that ``path`` (module ``name``) imports, anywhere but under ``if TYPE_CHECKING:``."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = typing_only(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
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
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def load(label: str, root: Path) -> Tree:
    t = Tree(label, root, module_files(root))
    known = set(t.files)
    for name, path in t.files.items():
        t.lines[name] = len(path.read_text(encoding="utf-8").splitlines())
        t.graph[name] = imports(path, name, known)
    return t


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return sorted(out)


def is_alias(path: Path) -> bool:
    if path.name in ("__init__.py", "__main__.py"):
        return False
    body = ast.parse(path.read_text(encoding="utf-8")).body
    n_imports = sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)
    own = [n for n in body if not (
        isinstance(n, (ast.Import, ast.ImportFrom))
        or (isinstance(n, ast.Expr) and isinstance(n.value, (ast.Constant, ast.Call)))
        or (isinstance(n, ast.Assign) and [getattr(x, "id", None) for x in n.targets] == ["__all__"]))]
    return n_imports > 0 and not own


def stage(name: str) -> str:
    """The pipeline stage of a module (``name`` without the root's name; "" is the root ``__init__``)."""
    if name == "":
        return "api"
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        old = ".".join(parts[:k])
        if old in OLD_HOME:
            parts = OLD_HOME[old].split(".") + parts[k:]
            break
    if len(parts) == 1 and parts[0] in BASE:
        return "base"
    if parts[0] not in RANK:
        sys.exit(f"module {name!r} has no stage: add it to ORDER, BASE or OLD_HOME in {Path(__file__).name}")
    return parts[0]


def short(t: Tree, name: str) -> str:
    return name.partition(".")[2] or "__init__"


def back_up(t: Tree) -> list[tuple[str, str, str, str]]:
    """(importer, its stage, imported, its stage) for each edge to a later stage."""
    out = []
    for a in sorted(t.graph):
        for b in sorted(t.graph[a]):
            sa, sb = stage(a.partition(".")[2]), stage(b.partition(".")[2])
            if RANK[sa] < RANK[sb]:
                out.append((short(t, a), sa, short(t, b), sb))
    return out


def numbers(t: Tree) -> dict[str, str]:
    top = [n for n, p in t.files.items() if p.parent == t.root]
    packages = [n for n, p in t.files.items() if p.name == "__init__.py"]
    longest = max(t.files, key=lambda n: t.lines[n])
    n_edges = sum(len(v) for v in t.graph.values())
    cyc = cycles(t.graph)
    return {
        "rooms (modules)": str(len(t.files)),
        "lines": f"{sum(t.lines.values()):,}",
        "floors (packages, root included)": str(len(packages)),
        "top-level modules (`__init__` included)": str(len(top)),
        "longest module": f"`{short(t, longest)}` ({t.lines[longest]})",
        "modules over 450 lines": str(sum(v > 450 for v in t.lines.values())),
        "import edges": str(n_edges),
        "import cycles (modules in them)": f"{len(cyc)} ({sum(map(len, cyc))})",
        "alias modules": str(sum(is_alias(p) for p in t.files.values())),
        "arrows running back up": str(len(back_up(t))),
    }


def from_git(rev: str, tmp: Path) -> Path:
    """``src/steerscale`` at ``rev`` of the repository this script is in, unpacked under ``tmp``."""
    repo = Path(__file__).resolve().parents[1]
    try:
        data = subprocess.run(["git", "-C", str(repo), "archive", rev, "src/steerscale"], check=True,
                              capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"{rev}: not a folder, and git archive failed: {e.stderr.decode().strip()}")
    dest = tmp / rev.replace("/", "_")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and 3.11.4): refuse links out of dest
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / "src" / "steerscale"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="*", default=["src/steerscale"], help="package folders or git revisions")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = [load(arg, Path(arg) if Path(arg).is_dir() else from_git(arg, Path(tmp))) for arg in args.trees]
        # (the default, src/steerscale, is read from the working directory: run from the repository root)
        cols = [numbers(t) for t in trees]  # the trees of git revisions are read inside this block
        print("| | " + " | ".join(f"`{t.label}`" for t in trees) + " |")
        print("|---|" + "---:|" * len(trees))
        for key in cols[0]:
            print(f"| {key} | " + " | ".join(c[key] for c in cols) + " |")
        print("\nPipeline order (a stage may import from itself and earlier ones): "
              + " → ".join("/".join(g) for g in ORDER))
        for t in trees:
            print(f"\n### `{t.label}`\n")
            cyc = cycles(t.graph)
            print("- import cycles: " + ("none" if not cyc else "; ".join(
                "{" + ", ".join(short(t, n) for n in c) + "}" for c in cyc)))
            aliases = [short(t, n) for n, p in sorted(t.files.items()) if is_alias(p)]
            print("- alias modules: " + (", ".join(f"`{a}`" for a in aliases) or "none"))
            ups = back_up(t)
            print(f"- arrows running back up: {len(ups) or 'none'}")
            for a, sa, b, sb in ups:
                print(f"  - `{a}` ({sa}) → `{b}` ({sb})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
