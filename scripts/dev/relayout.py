"""Move steerscale modules to new places and rewrite every import to match.

Usage: python scripts/dev/relayout.py ROOT [--dry-run]
Reads MOVES (old dotted module -> new dotted module). Imports are resolved to absolute names against the OLD
layout, mapped through MOVES, and written back relative (inside src/) from the importer's NEW package, or
absolute (tests, benchmarks, scripts, examples). New packages get an ``__init__.py`` with a docstring.
Run resolve_reexports.py first so every import names the defining module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve()
DRY = "--dry-run" in sys.argv
SRC = ROOT / "src"
PKG = SRC / "steerscale"

S = "steerscale."
MOVES = {S + k: S + v for k, v in {
    # core: the model side of the method
    "models": "core.models", "prompts": "core.prompts", "data": "core.data", "batching": "core.batching",
    "steering": "core.steering", "activations": "core.activations", "vectors": "core.vectors",
    "evaluate": "core.evaluate",
    "letters": "core.letters", "pairs": "core.pairs", "vector_ops": "core.vector_ops", "autobatch": "core.autobatch",
    "catalog": "core.catalog",
    # the sweep over layers x multipliers
    "sweep": "sweep.run", "units": "sweep.units", "plan": "sweep.plan", "tables": "sweep.tables",
    "backends": "sweep.backends", "backends.local": "sweep.backends.local", "backends.ray": "sweep.backends.ray",
    "backends.ray_connect": "sweep.backends.ray_connect", "backends.resources": "sweep.backends.resources",
    "backends.workers": "sweep.backends.workers", "screening": "sweep.screening",
    # files in and out
    "store": "io.store", "tensorio": "io.tensorio", "results": "io.results", "guards": "io.guards",
    "interop": "io.interop", "outputs": "io.outputs",
    # the open-ended experiment
    "measures.openended_run": "openended.run", "measures.openended_tables": "openended.tables",
    "measures.openended_store": "openended.store",
    # interventions other than addition
    "interventions": "interventions.ablation", "orthogonalization": "interventions.orthogonalize",
    "ablation_recipe": "interventions.recipe",
    # showcase, analysis, reproduce
    "showcase": "showcase.run", "showcase_config": "showcase.config", "showcase_plots": "showcase.plots",
    "showcase_control": "showcase.control",
    "verdicts": "analysis.verdicts",
    "reproduce": "reproduce.run", "reproduce_config": "reproduce.config",
    "reproduce_reliability": "reproduce.reliability", "reproduce_report": "reproduce.report",
}.items()}
NEW_PACKAGES = {
    "core": "The model side of the method: loading models, A/B items and prompts, batches, hooks, activations, "
            "steering vectors and the behaviour score.",
    "sweep": "The sweep over layers x multipliers: the run, its units and plan, its tables, and the backends that "
             "execute it (local, Ray).",
    "io": "Files in and out: the resumable point store, safetensors I/O, result tables and manifests, hostile-input "
          "guards, and llama.cpp / steering-vectors interop.",
    "openended": "The open-ended experiment: first-token refusal, capability cost and judged generations, swept "
                 "over layers x multipliers and stored point by point.",
    "interventions": "Interventions other than addition: the refusal direction, its ablation and weight "
                     "orthogonalisation.",
    "showcase": "The showcase panels: what a small model can show about steering, measured.",
    "reproduce": "The reproduce run: a TOML config of models and settings, run end to end into one report.",
}


def modname(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_pkg_init(path: Path) -> bool:
    return path.name == "__init__.py"


OLD = {modname(p): p for p in PKG.rglob("*.py")}
for old in MOVES:
    assert old in OLD, f"no module {old}"


def new_name(mod: str) -> str:
    if mod in MOVES:
        return MOVES[mod]
    # a module inside a moved package (backends.x)
    for old, new in MOVES.items():
        if mod.startswith(old + "."):
            return new + mod[len(old):]
    return mod


def new_path(mod: str, old_path: Path) -> Path:
    nm = new_name(mod)
    parts = nm.split(".")
    if is_pkg_init(old_path):
        return SRC.joinpath(*parts, "__init__.py")
    return SRC.joinpath(*parts[:-1], parts[-1] + ".py")


def package_of(mod: str, path: Path) -> str:
    return mod if is_pkg_init(path) else mod.rpartition(".")[0]


def resolve_from(node: ast.ImportFrom, pkg: str | None) -> str | None:
    if node.level:
        base = pkg.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module


def rel(importer_pkg: str, target: str) -> tuple[int, str]:
    a, b = importer_pkg.split("."), target.split(".")
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return len(a) - k + 1, ".".join(b[k:])


def fmt(indent: str, level: int, module: str, names: list[str]) -> list[str]:
    head = f"{indent}from {'.' * level}{module} import "
    body = ", ".join(names)
    if len(head) + len(body) <= 120:
        return [head + body]
    lines, cur = [head + "("], indent + "    "
    for nm in names:
        piece = nm + ", "
        if len(cur) + len(piece) > 118:
            lines.append(cur.rstrip())
            cur = indent + "    "
        cur += piece
    lines.append(cur.rstrip().rstrip(",") + ",")
    lines.append(indent + ")")
    return lines


def emit(indent, importer_new_pkg, target, names, relative):
    if relative:
        level, m = rel(importer_new_pkg, target)
        return fmt(indent, level, m, names)
    return fmt(indent, 0, target, names)


def rewrite_text(text: str, old_pkg: str | None, new_pkg: str | None) -> str:
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        first_line = None
        if isinstance(node, ast.ImportFrom):
            if node.level and old_pkg is None:
                continue
            src = resolve_from(node, old_pkg)
            if not src or not (src == "steerscale" or src.startswith(S)):
                continue
            groups: dict[str, list[str]] = {}
            for a in node.names:
                full = f"{src}.{a.name}"
                local = a.asname or a.name
                if full in OLD and new_name(full) != full:  # `from pkg import module` of a moved module
                    nm = new_name(full)
                    parent, _, last = nm.rpartition(".")
                    groups.setdefault(parent, []).append(last if last == local else f"{last} as {local}")
                else:
                    groups.setdefault(new_name(src), []).append(a.name if not a.asname else f"{a.name} as {a.asname}")
            relative = bool(node.level) and new_pkg is not None
            if (list(groups) == [src] and not (relative and new_pkg != old_pkg)):
                continue
            first_line = lines[node.lineno - 1]
            indent = first_line[: len(first_line) - len(first_line.lstrip())]
            new = []
            for tgt, names in groups.items():
                new += emit(indent, new_pkg, tgt, names, relative)
            edits.append((node.lineno, node.end_lineno, new))
        elif isinstance(node, ast.Import):
            changed = False
            parts = []
            for a in node.names:
                nm = new_name(a.name) if a.name.startswith(S) else a.name
                changed |= nm != a.name
                parts.append(nm if not a.asname else f"{nm} as {a.asname}")
            if changed:
                if any(not a.asname for a in node.names if new_name(a.name) != a.name):
                    raise SystemExit(f"plain `import {', '.join(a.name for a in node.names)}` of a moved module: "
                                     f"rewrite by hand")
                first_line = lines[node.lineno - 1]
                indent = first_line[: len(first_line) - len(first_line.lstrip())]
                edits.append((node.lineno, node.end_lineno, [f"{indent}import {', '.join(parts)}"]))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1 : end] = [ln + "\n" for ln in new]
    return "".join(lines)


def git(*args):
    if DRY:
        print("git", *args)
        return
    subprocess.run(["git", "-C", str(ROOT), *args], check=True)


EMBEDDED = re.compile(r'((?:from|import) |sys\.modules\[["\'])(steerscale(?:\.\w+)+)')


def embedded(text: str) -> str:
    """Module names inside strings of tests (code run in subprocesses, sys.modules look-ups). Import statements
    themselves are left to rewrite_text (run after this), so no name is mapped twice."""
    skip = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(range(node.lineno, node.end_lineno + 1))
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def sub(m):
        line = next(i for i, s in enumerate(starts) if s > m.start())
        if line in skip:
            return m.group(0)
        name = m.group(2)
        while name not in OLD and "." in name:
            name = name.rpartition(".")[0]
        return m.group(1) + new_name(name) + m.group(2)[len(name):] if name in OLD else m.group(0)
    return EMBEDDED.sub(sub, text)


# 1. compute every src file's new text against the old layout
plan = {}
for mod, path in OLD.items():
    text = path.read_text(encoding="utf-8")
    new_mod = new_name(mod)
    out = rewrite_text(text, package_of(mod, path), package_of(new_mod, new_path(mod, path)))
    plan[path] = (new_path(mod, path), out)
others = {}
for d in ("tests", "examples", "benchmarks", "scripts"):
    for p in (ROOT / d).rglob("*.py") if (ROOT / d).is_dir() else []:
        text = p.read_text(encoding="utf-8")
        out = rewrite_text(embedded(text), None, None)
        if out != text:
            others[p] = out

# 2. new packages, moves, writes
for name, doc in NEW_PACKAGES.items():
    init = PKG / name / "__init__.py"
    if DRY:
        print("create", init)
        continue
    init.parent.mkdir(exist_ok=True)
    if not init.exists():
        init.write_text(f'"""{doc}\n\nImport names from the module that defines them; this package re-exports nothing."""\n',
                        encoding="utf-8")
        git("add", str(init))
for old_path, (np, text) in plan.items():
    if np != old_path:
        if DRY:
            print("move", old_path.relative_to(ROOT), "->", np.relative_to(ROOT))
        else:
            np.parent.mkdir(parents=True, exist_ok=True)
            git("mv", str(old_path), str(np))
    if not DRY:
        np.write_text(text, encoding="utf-8")
for p, text in others.items():
    if DRY:
        print("rewrite", p.relative_to(ROOT))
    else:
        p.write_text(text, encoding="utf-8")
# empty old package folders (backends/) are left for git to forget
