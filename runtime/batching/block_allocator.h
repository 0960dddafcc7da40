// KV block bookkeeping for one KV pool: fixed-size blocks with refcounts, a free
// list kept in eviction order (LRU), a reserved null block, and the prefix
// cache (full blocks identified by a hash chained over their parent's hash, their
// token ids and a per-tenant salt). Host-side metadata only; the bytes live in
// runtime::KvCache. Owned by one thread (the engine's); not thread-safe, but
// it can keep a thread-safe PrefixIndex of its cached hashes (MirrorInto).
//
// The pool can grow and shrink in groups of blocks (the unit runtime::KvCache
// backs with memory). Groups [0, num_groups_backed) are backed; of those the
// top num_groups_draining are being given back: nothing new is placed there,
// their prefix-cache entries are dropped, and once none of their blocks is held
// TakeDrainedGroups hands them to the caller to unback. Group 0 (it holds the
// null block) is never drained.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/batching/prefix_index.h"

namespace cohost::runtime {

using BlockId = int32_t;

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
  // num_blocks counts the null block too. Blocks come in groups of
  // group_blocks (0: one group of all), of which the first initial_groups
  // (-1: all; 0: none yet) are backed; the usable blocks are the backed ones
  // but block 0.
  BlockAllocator(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching,
                 int32_t group_blocks = 0, int32_t initial_groups = -1);

  // Chained hash of one full block. parent is 0 for the first block; salt
  // separates tenants (0 = shared).
  static BlockHash HashBlock(BlockHash parent, absl::Span<const int32_t> tokens, uint64_t salt);

  // How many leading full blocks of `num_tokens` tokens a prefix-cache lookup
  // considers: the last token is always recomputed (its logits are needed),
  // so (num_tokens - 1) / block_size of them.
  static int32_t CacheablePrefixBlocks(int64_t num_tokens, int32_t block_size) {
    return num_tokens > 0 ? static_cast<int32_t>((num_tokens - 1) / block_size) : 0;
  }

  // The longest run of leading hashes whose blocks are cached, as block ids
  // (possibly in use by others, possibly free but not yet evicted). Counts
  // queries and hits in the stats. No references are taken.
  std::vector<BlockId> LookupPrefix(absl::Span<const BlockHash> hashes);
  // The length of that run, without counting a query in the stats.
  int32_t CachedPrefixLength(absl::Span<const BlockHash> hashes) const;

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

  // From now on `index` (outliving this allocator, or until reset to null)
  // mirrors the cached hashes: what is cached now is inserted at once.
  void MirrorInto(PrefixIndex* index);

  // Drops one reference per block. Blocks reaching refcount 0 join the free
  // list's tail in the order given: pass a sequence's blocks last-first so its
  // tail is evicted before its (more shareable) head.
  void Release(absl::Span<const BlockId> blocks);

  // ---- growing and shrinking, a group at a time ----
  // Backs the next group: its blocks join the free list. No group may be
  // draining (stop draining one instead: it is still backed).
  void AddGroup();
  // The top `n` active groups (never group 0) start draining: their free
  // blocks leave the free list and every one of their blocks leaves the
  // prefix cache. Returns how many started (fewer when fewer are active).
  int32_t StartDraining(int32_t n);
  // The lowest `n` draining groups become active again; returns how many.
  int32_t StopDraining(int32_t n);
  // Removes the top draining groups that no longer hold any block, and
  // returns how many: the caller unbacks them.
  int32_t TakeDrainedGroups();
  int32_t group_blocks() const { return group_blocks_; }
  int32_t max_groups() const { return max_groups_; }
  int32_t num_groups_backed() const { return groups_backed_; }
  int32_t num_groups_draining() const { return groups_draining_; }
  // Blocks at or past this id are in draining or unbacked groups.
  BlockId active_end() const;

  int32_t num_free() const { return num_free_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_usable() const { return std::max(0, active_end() - 1); }
  int32_t RefCount(BlockId block) const;
  BlockAllocatorStats Stats() const;

  // The hash `block` is cached under, if any (held or free-but-not-evicted).
  std::optional<BlockHash> CachedHashOf(BlockId block) const;
  // Free blocks, next to be handed out first. O(num_free); for tests and debugging.
  std::vector<BlockId> FreeBlocksInEvictionOrder() const;
  // Walks every structure and reports the first inconsistency (free list links
  // and counts, refcounts, hash map <-> per-block hash, the mirrored index).
  // O(num_blocks); for tests.
  absl::Status Validate() const;

 private:
  static constexpr int32_t kNil = -1;  // end of the free list

  void PushFreeTail(BlockId block);
  void Unlink(BlockId block);
  void CheckBlock(BlockId block) const;
  // Removes `block`'s prefix-cache entry, if it has one.
  void Uncache(BlockId block);
  BlockId GroupBegin(int32_t group) const { return group * group_blocks_; }
  BlockId GroupEnd(int32_t group) const {
    return std::min(num_blocks_, (group + 1) * group_blocks_);
  }

  int32_t num_blocks_;
  int32_t block_size_;
  bool prefix_caching_;
  int32_t group_blocks_;
  int32_t max_groups_;
  int32_t groups_backed_;
  int32_t groups_draining_ = 0;
  std::vector<int32_t> ref_;                    // [num_blocks] refcount
  std::vector<std::optional<BlockHash>> hash_;  // [num_blocks] cached content, if any
  // Free list links over block ids ([num_blocks] each), kNil terminated; a block
  // is on the list exactly when its refcount is 0 (the null block never is).
  std::vector<int32_t> prev_, next_;
  int32_t head_ = kNil, tail_ = kNil;
  int32_t num_free_ = 0, num_cached_free_ = 0;
  absl::flat_hash_map<BlockHash, BlockId> cached_;
  PrefixIndex* index_ = nullptr;  // mirrors cached_'s keys, when set
  BlockAllocatorStats stats_;
};

}  // namespace cohost::runtime
