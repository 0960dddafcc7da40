// The entry points of a fuzz target (libFuzzer's): every target defines
// LLVMFuzzerTestOneInput; one that needs set-up (a tokenizer) defines
// LLVMFuzzerInitialize too. Built with COHOST_FUZZ (scripts/fuzz.sh), a
// target is a libFuzzer binary; built without, replay_main.cc runs it over
// the files it is given, which is how its committed corpus runs as a test.
//
// A target crashes (FUZZ_CHECK) on what must never happen to an untrusted
// input: a crash, a sanitizer report, or an answer that is no clear error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);

#define FUZZ_CHECK(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                 \
      std::fputc('\n', stderr);                                                          \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
