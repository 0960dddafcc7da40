#!/usr/bin/env bash
# Configures and builds cohost into build/ (or $COHOST_BUILD_DIR) with Ninja.
# Extra arguments go to cmake, e.g. -DCOHOST_CUDA=OFF.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${COHOST_BUILD_DIR:-$root/build}"
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C "$build" ${COHOST_BUILD_TARGETS:-}
