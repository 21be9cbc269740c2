"""Count parameters named model/tokenizer/vectors/config without an annotation in src/ (issue 18's "four core nouns").

Usage: python scripts/dev/untyped_nouns.py [--list] [ROOT ...]   (default root: src/steerscale)
Prints one line per noun: untyped/total, then the overall count; --list also prints every untyped site.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

NOUNS = ("model", "tokenizer", "vectors", "config")


def params(fn: ast.FunctionDef | ast.AsyncFunctionDef):
    a = fn.args
    return a.posonlyargs + a.args + a.kwonlyargs


def count(roots: list[Path]):
    total = {n: 0 for n in NOUNS}
    untyped: dict[str, list[str]] = {n: [] for n in NOUNS}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for p in params(node):
                        if p.arg in NOUNS:
                            total[p.arg] += 1
                            if p.annotation is None:
                                untyped[p.arg].append(f"{path}:{node.lineno} {node.name}({p.arg})")
    return total, untyped


def main(argv: list[str]) -> int:
    show = "--list" in argv
    roots = [Path(a) for a in argv if a != "--list"] or [Path("src/steerscale")]
    total, untyped = count(roots)
    for n in NOUNS:
        print(f"{n}: {len(untyped[n])} untyped of {total[n]}")
    print(f"all: {sum(map(len, untyped.values()))} untyped of {sum(total.values())}")
    if show:
        for n in NOUNS:
            for site in untyped[n]:
                print(site)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
