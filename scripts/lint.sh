#!/usr/bin/env bash
# The formatting and static checks scripts/test.sh runs (and fails on):
#   clang-format: every C++ file in the tree matches the root .clang-format
#     (cheap, so all of them; `scripts/lint.sh --fix` reformats in place);
#   clang-tidy: the root .clang-tidy's checks, as errors, on the .cc files that
#     changed and the new ones: against $COHOST_LINT_BASE when set, else against
#     the merge base with the upstream branch, else against the previous commit,
#     plus uncommitted changes. Needs the compile database of $COHOST_BUILD_DIR
#     (default build/), which scripts/build.sh writes;
#   the link graph in docs/architecture.md matches CMake's (scripts/link_graph.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
build="${COHOST_BUILD_DIR:-$root/build}"

# The lists come from git: without a working tree git can read, they would be
# empty and every check would pass having checked nothing.
git rev-parse --is-inside-work-tree > /dev/null ||
  { echo "lint: not a git working tree git can read (git rev-parse failed)"; exit 1; }
mapfile -t all_cxx < <(git ls-files --cached --others --exclude-standard \
  '*.h' '*.cc' '*.cu' '*.cuh' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
[ "${#all_cxx[@]}" -gt 0 ] || { echo "lint: git lists no C++ files"; exit 1; }

if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${all_cxx[@]}"
  exit 0
fi

echo "== clang-format: ${#all_cxx[@]} files"
if ! clang-format --dry-run --Werror "${all_cxx[@]}" 2> "$build/clang-format.log"; then
  grep -m 20 'error:' "$build/clang-format.log" || true
  echo "lint: formatting differs from .clang-format (scripts/lint.sh --fix formats in place)"
  exit 1
fi

echo "== link graph: docs/architecture.md against CMake's"
printf '%s\n' 'set(GRAPHVIZ_EXTERNAL_LIBS FALSE)' 'set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)' \
  'set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)' > "$build/CMakeGraphVizOptions.cmake"
cmake --graphviz="$build/link-graph/cohost.dot" "$build" > /dev/null
if grep -q '"cohost_kernels_cuda"' "$build/link-graph/cohost.dot"; then
  python3 "$root/scripts/link_graph.py" "$build/link-graph/cohost.dot" --check docs/architecture.md
else
  echo "   skipped: this build has no CUDA, and the documented graph is the CUDA build's"
fi

base="${COHOST_LINT_BASE:-}"
if [ -z "$base" ]; then
  base="$(git merge-base HEAD '@{upstream}' 2>/dev/null || true)"
fi
if [ -z "$base" ] || [ "$base" = "$(git rev-parse HEAD)" ]; then
  base="$(git rev-parse --verify -q HEAD~1 || true)"
fi
if [ -n "$base" ]; then
  mapfile -t changed < <({ git diff --name-only --diff-filter=AMR "$base"
                           git ls-files --others --exclude-standard; } |
                         sort -u | grep -E '\.cc$' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
else
  # No commit to compare with (a shallow clone, the first commit): said out
  # loud, not passed as "0 changed" (set COHOST_LINT_BASE to check a range).
  echo "lint: WARNING: no earlier commit to compare with; clang-tidy checks uncommitted files only"
  mapfile -t changed < <({ git diff --name-only --diff-filter=AMR HEAD
                           git ls-files --others --exclude-standard; } |
                         sort -u | grep -E '\.cc$' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  base="(none)"
fi
echo "== clang-tidy: ${#changed[@]} changed .cc files (since ${base:0:12})"
[ "${#changed[@]}" -eq 0 ] && exit 0
[ -f "$build/compile_commands.json" ] || { echo "lint: no $build/compile_commands.json"; exit 1; }
# Two at a time; a file with any finding fails the run.
printf '%s\n' "${changed[@]}" |
  xargs -P 2 -n 4 clang-tidy -p "$build" --quiet --warnings-as-errors='*' 2> "$build/clang-tidy.log" ||
  { echo "lint: clang-tidy findings above (the root .clang-tidy's checks)"; exit 1; }
