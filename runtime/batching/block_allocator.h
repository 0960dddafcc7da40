// KV block bookkeeping for one KV pool: fixed-size blocks with refcounts, a free
// list kept in eviction order (LRU), a reserved null block, and the prefix
// cache (full blocks identified by a hash chained over their parent's hash, their
// token ids and a per-tenant salt). Host-side metadata only; the bytes live in
// runtime::KvCache. Owned by one thread (the engine's); not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace cohost::runtime {

using BlockId = int32_t;
using BlockHash = uint64_t;

inline constexpr BlockId kNullBlock = 0;  // never handed out; pads block tables

struct BlockAllocatorStats {
  int32_t num_blocks = 0;       // usable blocks (the null block excluded)
  int32_t num_free = 0;         // refcount 0: truly free plus evictable cached
  int32_t num_cached_free = 0;  // refcount 0 but still holding a reusable prefix
  int64_t prefix_queries = 0;   // full blocks looked up in the prefix cache
  int64_t prefix_hits = 0;      // of those, found
  int64_t evictions = 0;        // cached blocks reused for new content
};

class BlockAllocator {
 public:
  // num_blocks counts the null block too, so num_blocks - 1 are usable.
  BlockAllocator(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching);

  // Chained hash of one full block. parent is 0 for the first block; salt
  // separates tenants (0 = shared).
  static BlockHash HashBlock(BlockHash parent, absl::Span<const int32_t> tokens, uint64_t salt);

  // The longest run of leading hashes whose blocks are cached, as block ids
  // (possibly in use by others, possibly free but not yet evicted). Counts
  // queries and hits in the stats. No references are taken.
  std::vector<BlockId> LookupPrefix(absl::Span<const BlockHash> hashes);

  // Takes a reference on each block (cached blocks found by LookupPrefix);
  // a free one leaves the free list.
  void Acquire(absl::Span<const BlockId> blocks);

  // n fresh blocks with refcount 1, evicting the least recently freed cached
  // blocks as needed. All or nothing: nullopt, with no change, when fewer than
  // n blocks are free.
  std::optional<std::vector<BlockId>> Allocate(int32_t n);

  // Records that `block` (held, full) holds the content `hash`, so later
  // lookups find it. If another block already holds that hash, nothing changes.
  void Cache(BlockId block, BlockHash hash);

  // Drops one reference per block. Blocks reaching refcount 0 join the free
  // list's tail in the order given: pass a sequence's blocks last-first so its
  // tail is evicted before its (more shareable) head.
  void Release(absl::Span<const BlockId> blocks);

  int32_t num_free() const { return num_free_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_usable() const { return num_blocks_ - 1; }
  int32_t RefCount(BlockId block) const;
  BlockAllocatorStats Stats() const;

  // The hash `block` is cached under, if any (held or free-but-not-evicted).
  std::optional<BlockHash> CachedHashOf(BlockId block) const;
  // Free blocks, next to be handed out first. O(num_free); for tests and debugging.
  std::vector<BlockId> FreeBlocksInEvictionOrder() const;
  // Walks every structure and reports the first inconsistency (free list links
  // and counts, refcounts, hash map <-> per-block hash). O(num_blocks); for tests.
  absl::Status Validate() const;

 private:
  static constexpr int32_t kNil = -1;  // end of the free list

  void PushFreeTail(BlockId block);
  void Unlink(BlockId block);
  void CheckBlock(BlockId block) const;

  int32_t num_blocks_;
  int32_t block_size_;
  bool prefix_caching_;
  std::vector<int32_t> ref_;                    // [num_blocks] refcount
  std::vector<std::optional<BlockHash>> hash_;  // [num_blocks] cached content, if any
  // Free list links over block ids ([num_blocks] each), kNil terminated; a block
  // is on the list exactly when its refcount is 0 (the null block never is).
  std::vector<int32_t> prev_, next_;
  int32_t head_ = kNil, tail_ = kNil;
  int32_t num_free_ = 0, num_cached_free_ = 0;
  absl::flat_hash_map<BlockHash, BlockId> cached_;
  BlockAllocatorStats stats_;
};

}  // namespace cohost::runtime
