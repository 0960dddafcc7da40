#!/usr/bin/env bash
# Makes (or refreshes) the virtualenv with tests/python/requirements.txt, outside
# the repository, and prints its python. Quiet when it is already up to date.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${COHOST_TEST_VENV:-$HOME/.cache/cohost-test-venv}"
requirements="$root/tests/python/requirements.txt"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "test_venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
