// Internal-invariant checks for the KV bookkeeping (BlockAllocator,
// KvCacheManager). A failure here is an engine bug (double release, refcount
// underflow, a stale block table), never something a client can cause, so it
// prints where and why and aborts instead of corrupting the cache silently.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_format.h"

#define COHOST_KV_CHECK(cond, ...)                                                            \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      std::fprintf(stderr, "%s:%d: KV invariant failed: %s: %s\n", __FILE__, __LINE__, #cond, \
                   absl::StrFormat(__VA_ARGS__).c_str());                                     \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
