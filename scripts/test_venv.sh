#!/usr/bin/env bash
# Makes the virtualenv the Python tests run in, outside the repository, and
# prints its python: tests/python/requirements.txt (the openai package) and
# cohost-client installed from the tree (clients/python, built from the
# committed proto). It is made afresh whenever any of those inputs changed,
# so a package change is always tested in a new venv; otherwise it is reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${COHOST_TEST_VENV:-$HOME/.cache/cohost-test-venv}"
inputs="$(cd "$root" && { cat tests/python/requirements.txt
  find clients/python -path clients/python/build -prune -o \
    \( -name '*.py' -o -name '*.toml' \) -not -path '*/cohost_client/v1/*' -print | sort |
    xargs sha256sum
  sha256sum proto/cohost/v1/inference.proto; } | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "test_venv: making $venv (openai, cohost-client from the tree)" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/python/requirements.txt" >&2
# A copy, so that building leaves nothing in the tree.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/clients" "$build/proto/cohost/v1"
cp -r "$root/clients/python" "$build/clients/python"
rm -rf "$build/clients/python/build" "$build/clients/python/cohost_client/v1" \
  "$build/clients/python/"*.egg-info
cp "$root/proto/cohost/v1/inference.proto" "$build/proto/cohost/v1/"
"$venv/bin/pip" install -q --disable-pip-version-check "$build/clients/python" >&2
echo "$inputs" > "$venv/.inputs"
echo "$venv/bin/python"
