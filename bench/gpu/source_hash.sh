#!/usr/bin/env bash
# A hash of the sources the carried GPU binaries are built from (C++, CUDA and
# CMake files of the folders they link), for telling a stale .gpu-carry/ from
# a current one: prepare_carry.sh records it, check.sh compares. Computed from
# the files themselves, not git, because the device machine gets a copy of the
# working tree that may have no .git.
#   bench/gpu/source_hash.sh   (prints the hash)
set -euo pipefail
cd "$(dirname "$0")/../.."
{
  echo CMakeLists.txt
  find cmake common kernels runtime scheduler tests bench -type f \
    \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name 'CMakeLists.txt' \
    -o -name '*.cmake' \) 2>/dev/null
} | LC_ALL=C sort | while read -r f; do
  printf '%s\n' "$f"
  cat "$f"
done | sha256sum | cut -c1-16
