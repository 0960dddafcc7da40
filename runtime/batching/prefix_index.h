// Which block hashes the prefix cache holds, readable from any thread. The
// BlockAllocator belongs to its engine's thread; when given an index it keeps
// it in step as blocks are cached and uncached (evicted, drained), so that
// another thread (the Router, predicting a request's TTFT at Submit) can ask
// how much of a prompt is cached without touching engine state. An answer is
// a snapshot: those blocks may be evicted before the request is admitted.
#pragma once

#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"

namespace cohost::runtime {

using BlockHash = uint64_t;

class PrefixIndex {
 public:
  void Insert(BlockHash hash);
  void Erase(BlockHash hash);
  bool Contains(BlockHash hash) const;
  size_t size() const;

  // The tokens of `tokens` a sequence would find cached (KvCacheManager::
  // FindCachedPrefix's rule: whole blocks of `block_size`, chained hashes
  // salted with `salt`, never covering the last token), per this index.
  int32_t CachedPrefixTokens(absl::Span<const int32_t> tokens, int32_t block_size,
                             uint64_t salt) const;

 private:
  // std::mutex, not absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, which then cannot see an absl::Mutex's locking.
  mutable std::mutex mu_;
  absl::flat_hash_set<BlockHash> hashes_;  // guarded by mu_
};

}  // namespace cohost::runtime
