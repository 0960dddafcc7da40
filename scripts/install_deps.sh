#!/usr/bin/env bash
# Installs the Debian packages cohost builds against (README's dependency table
# says why each). Idempotent and quiet when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache python3 python3-pip python3-venv clang-format clang-tidy
  libabsl-dev libopenblas-dev nlohmann-json3-dev libpcre2-dev libicu-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libcpp-httplib-dev
  libevent-dev libssl-dev openssl curl git
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "install_deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# Through env: sudo's env_reset would drop a variable set before it.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
