#!/usr/bin/env bash
# bench/gpu/check.sh where no GPU is present stops at once: exit 2, a "no GPU"
# message and a table saying so. Skipped (exit 77) on a machine with a GPU,
# where check.sh would run for real.
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "a GPU is present: check.sh would run for real, not dry"
  exit 77
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
OUT="$out" timeout 60 bash "$root/bench/gpu/check.sh" >"$out/stdout" 2>&1
rc=$?
cat "$out/stdout"
if [ "$rc" -ne 2 ]; then
  echo "FAIL: check.sh exited $rc; without a GPU it must exit 2"
  exit 1
fi
grep -q "^no GPU" "$out/stdout" || { echo "FAIL: no 'no GPU' message"; exit 1; }
grep -q "| probe | FAIL | no GPU |" "$out/table.md" || { echo "FAIL: table.md lacks the probe row"; exit 1; }
echo "PASS: check.sh stops cleanly without a GPU"
