#!/usr/bin/env bash
# The client program (cohost-client) must not carry the engine, the kernels or a
# BLAS: none of their shared libraries among its dependencies, and none of
# their symbols in it. Usage: client_link_test.sh PATH/TO/cohost-client
set -euo pipefail
bin="$1"
[ -x "$bin" ] || { echo "FAIL: $bin is not an executable"; exit 1; }
fail=0

libs=$(ldd "$bin")
for lib in libopenblas libblas libcudart libcublas libpcre2 libicu; do
  if grep -q "$lib" <<<"$libs"; then
    echo "FAIL: $bin links $lib"
    fail=1
  fi
done

# Demangled defined symbols of the layers a client must not contain.
syms=$(nm -C --defined-only "$bin")
for pattern in 'cohost::runtime::Engine::' 'cohost::kernels::' 'cohost::runtime::Model::' \
               'cohost::runtime::Tokenizer::' 'cohost::scheduler::'; do
  if grep -qF "$pattern" <<<"$syms"; then
    echo "FAIL: $bin defines symbols of $pattern"
    grep -F "$pattern" <<<"$syms" | head -3
    fail=1
  fi
done

# The check is only worth something if it can see symbols at all.
grep -qF 'cohost::tools::GenerateCommand' <<<"$syms" ||
  { echo "FAIL: no cohost::tools symbols found in $bin (stripped?)"; fail=1; }

[ "$fail" -eq 0 ] && echo "OK: $bin links no engine, kernels, tokenizer, scheduler or BLAS"
exit "$fail"
