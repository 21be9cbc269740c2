"""Point every `from steerscale.X import name` at the module that defines `name`; drop re-export lines.

Usage: python scripts/dev/resolve_reexports.py ROOT [--dry-run]
Idempotent: running it twice changes nothing the second time. Keeps `steerscale/__init__.py` (public API)
and imports *from* the top-level package untouched; package `__init__` facades keep their own re-exports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve()
DRY = "--dry-run" in sys.argv
SRC = ROOT / "src"
PKG = SRC / "steerscale"


def modname(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {modname(p): p for p in PKG.rglob("*.py")}
TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def package_of(mod: str, path: Path) -> str:
    return mod if path.name == "__init__.py" else mod.rpartition(".")[0]


def resolve_from(node: ast.ImportFrom, pkg: str | None) -> str | None:
    if node.level:
        if pkg is None:
            return None
        base = pkg.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module


def defined(mod: str) -> set[str]:
    out = set()
    for n in TREES[mod].body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                for x in ast.walk(t):
                    if isinstance(x, ast.Name):
                        out.add(x.id)
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            out.add(n.target.id)
        elif isinstance(n, (ast.If, ast.Try)):
            for x in ast.walk(n):
                if isinstance(x, (ast.FunctionDef, ast.ClassDef)):
                    out.add(x.name)
                elif isinstance(x, ast.Assign):
                    for t in x.targets:
                        if isinstance(t, ast.Name):
                            out.add(t.id)
    return out


DEFINED = {m: defined(m) for m in MODULES}


def bindings(mod: str) -> dict[str, tuple[str, str]]:
    out = {}
    pkg = package_of(mod, MODULES[mod])
    for n in TREES[mod].body:
        if isinstance(n, ast.ImportFrom):
            src = resolve_from(n, pkg)
            if src in MODULES:
                for a in n.names:
                    if f"{src}.{a.name}" not in MODULES:
                        out[a.asname or a.name] = (src, a.name)
    return out


BINDINGS = {m: bindings(m) for m in MODULES}


def resolve(mod: str, name: str, seen=()) -> tuple[str, str]:
    """(defining module, its name there) of `name` as seen in `mod`."""
    if name in DEFINED[mod] or (mod, name) in seen:
        return mod, name
    if name in BINDINGS[mod]:
        src, orig = BINDINGS[mod][name]
        return resolve(src, orig, seen + ((mod, name),))
    return mod, name


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


def rewrite(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    is_src = SRC in path.parents
    mod = modname(path) if is_src else None
    pkg = package_of(mod, path) if is_src else None
    if mod == "steerscale":
        return False
    lines = text.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        src = resolve_from(node, pkg)
        if src not in MODULES or src == "steerscale":
            continue
        groups: dict[str, list[str]] = {}
        changed = False
        for a in node.names:
            if a.name == "*" or f"{src}.{a.name}" in MODULES:
                groups.setdefault(src, []).append(a.name if not a.asname else f"{a.name} as {a.asname}")
                continue
            tgt, orig = resolve(src, a.name)
            if tgt != src:
                changed = True
            local = a.asname or a.name
            groups.setdefault(tgt, []).append(orig if orig == local else f"{orig} as {local}")
        if not changed:
            continue
        first = lines[node.lineno - 1]
        indent = first[: len(first) - len(first.lstrip())]
        new = []
        for tgt, names in groups.items():
            if node.level and is_src:
                level, m = rel(pkg, tgt)
                new += fmt(indent, level, m, names)
            else:
                new += fmt(indent, 0, tgt, names)
        edits.append((node.lineno, node.end_lineno, new))
    if not edits:
        return False
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1 : end] = [ln + "\n" for ln in new]
    if not DRY:
        path.write_text("".join(lines), encoding="utf-8")
    print(f"rewrote {len(edits)} import(s) in {path.relative_to(ROOT)}")
    return True


def used_names(tree: ast.Module) -> set[str]:
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            pass
    for n in tree.body:  # __all__ entries count as uses
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
            if isinstance(n.value, (ast.List, ast.Tuple)):
                out.update(e.value for e in n.value.elts if isinstance(e, ast.Constant))
    return out


def drop_reexports(path: Path) -> None:
    """Remove names of `noqa: F401` import lines that the module itself never uses (non-__init__ modules)."""
    if path.name == "__init__.py":
        return
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    used = used_names(tree)
    lines = text.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        seg = "".join(lines[node.lineno - 1 : node.end_lineno])
        if "noqa: F401" not in seg:
            continue
        keep = [a for a in node.names if (a.asname or a.name) in used]
        if len(keep) == len(node.names):
            continue
        first = lines[node.lineno - 1]
        indent = first[: len(first) - len(first.lstrip())]
        new = [] if not keep else fmt(indent, node.level, node.module or "",
                                      [a.name if not a.asname else f"{a.name} as {a.asname}" for a in keep])
        if new and node.level:
            new = [ln.replace(f"from {'.' * node.level}{node.module or ''} import", f"from {'.' * node.level}"
                              f"{node.module or ''} import") for ln in new]
        edits.append((node.lineno, node.end_lineno, new))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1 : end] = [ln + "\n" for ln in new]
    if edits:
        if not DRY:
            path.write_text("".join(lines), encoding="utf-8")
        print(f"dropped re-exports in {path.relative_to(ROOT)}")


targets = [p for d in ("src", "tests", "examples", "benchmarks", "scripts") if (ROOT / d).is_dir()
           for p in (ROOT / d).rglob("*.py")]
for p in targets:
    rewrite(p)
for p in PKG.rglob("*.py"):
    drop_reexports(p)
