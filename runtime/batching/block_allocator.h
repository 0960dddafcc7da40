// KV block bookkeeping for one KV pool: fixed-size blocks with refcounts, free
// lists, a reserved null block, and the prefix cache (full blocks identified by
// a hash chained over their parent's hash, their token ids and a per-tenant
// salt). Host-side metadata only; the bytes live in runtime::KvCache. Owned by
// one thread (the engine's); not thread-safe, but it can keep a thread-safe
// PrefixIndex of its cached hashes (MirrorInto).
//
// A free block is either empty (it holds nothing reusable) or cached (a prefix
// a later request may find). Allocation takes empty blocks first, so cached
// content is overwritten only when nothing else is free, and then the least
// recently freed first (LRU). Empty blocks come from group 0 (never given
// back) first, then from the active group holding the most blocks: new work
// packs onto groups already in use, and the emptiest stay empty, ready to be
// given back.
//
// The pool can grow and shrink in groups of blocks (the unit runtime::KvCache
// backs with memory). Each group is unbacked, active or draining, in any
// order: growth backs the lowest unbacked group, and shrinking drains the
// active groups that hold the fewest blocks, so that memory goes back without
// waiting for (or preempting) the sequences of a fuller group. Nothing new is
// placed on a draining group, its prefix-cache entries are dropped, and once
// none of its blocks is held TakeDrainedGroups hands it to the caller to
// unback. Group 0 holds the null block, which every block table pads with: it
// drains last, only when no block is held and no other group is active, and
// is backed first, so that it is backed whenever any other group is.
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
  // (possibly in use by others, possibly free but not yet evicted). No
  // references are taken, nothing is counted (a lookup may be made again
  // each step while its sequence waits; CountPrefixLookup counts the one that
  // admitted it).
  std::vector<BlockId> LookupPrefix(absl::Span<const BlockHash> hashes);
  // A lookup that admitted a sequence: `queried` leading blocks looked up,
  // `found` of them cached.
  void CountPrefixLookup(int32_t queried, int32_t found) {
    stats_.prefix_queries += queried;
    stats_.prefix_hits += found;
  }
  // The length of that run, without counting a query in the stats.
  int32_t CachedPrefixLength(absl::Span<const BlockHash> hashes) const;

  // Takes a reference on each block (cached blocks found by LookupPrefix);
  // a free one leaves the free list.
  void Acquire(absl::Span<const BlockId> blocks);

  // n fresh blocks with refcount 1: empty ones first, from group 0, then from
  // the fullest active group (ties: the lowest id), each group's in the order
  // they were freed; then the least recently freed cached blocks, evicted. All
  // or nothing: nullopt, with no change, when fewer than n blocks are free.
  std::optional<std::vector<BlockId>> Allocate(int32_t n);

  // Records that `block` (held, full) holds the content `hash`, so later
  // lookups find it. If another block already holds that hash, nothing changes.
  void Cache(BlockId block, BlockHash hash);

  // From now on `index` (outliving this allocator, or until reset to null)
  // mirrors the cached hashes: what is cached now is inserted at once.
  void MirrorInto(PrefixIndex* index);

  // Drops one reference per block. Blocks reaching refcount 0 join the tail of
  // their free list in the order given: pass a sequence's blocks last-first so
  // its tail is evicted before its (more shareable) head.
  void Release(absl::Span<const BlockId> blocks);

  // ---- growing and shrinking, a group at a time ----
  // The group AddGroup should back next: the lowest unbacked one, or -1 when
  // every group is backed.
  int32_t NextGroupToBack() const;
  // Backs `group` (unbacked, and not before group 0; the caller has given it
  // memory): its blocks join the free list.
  void AddGroup(int32_t group);
  // The `n` active groups holding the fewest blocks (ties: the highest id)
  // start draining: their free blocks leave the free list and every one of
  // their blocks leaves the prefix cache. Group 0 only when it is the last
  // active group and no block is held. Returns how many started (fewer when
  // fewer may).
  int32_t StartDraining(int32_t n);
  // The `n` draining groups holding the most blocks (ties: the lowest id), the
  // ones furthest from being given back, become active again; returns how many.
  int32_t StopDraining(int32_t n);
  // The draining group holding the most blocks that still has a free one
  // becomes active again: what an engine that ran out of blocks takes back
  // first. False when no draining group has a free block.
  bool StopDrainingOneWithRoom();
  // Each draining group still holding blocks, the fullest first, swaps with
  // an active group (never group 0) that holds none, while there is one: that
  // one can be given back now. Returns how many swapped. Groups holding some
  // blocks never swap, so a pending drain is not redone (and its group's
  // prefixes dropped again) for a small gain.
  int32_t DrainEmptyInstead();
  // The draining groups that no longer hold any block become unbacked; the
  // caller unbacks their memory. In increasing id order. Group 0 only once
  // no other group is backed.
  std::vector<int32_t> TakeDrainedGroups();
  int32_t group_blocks() const { return group_blocks_; }
  int32_t max_groups() const { return max_groups_; }
  int32_t num_groups_backed() const { return groups_backed_; }
  int32_t num_groups_draining() const { return groups_draining_; }
  int32_t GroupOf(BlockId block) const { return block / group_blocks_; }
  // Whether `group` is backed and not draining: the only blocks handed out.
  bool IsActiveGroup(int32_t group) const;
  bool IsDrainingGroup(int32_t group) const;
  // Blocks of `group` held (refcount > 0).
  int32_t HeldInGroup(int32_t group) const;

  int32_t num_free() const { return num_free_; }
  int32_t block_size() const { return block_size_; }
  // Blocks in active groups, the null block excluded.
  int32_t num_usable() const { return num_usable_; }
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
  static constexpr int32_t kNil = -1;  // end of a free list

  // A doubly linked list of free blocks, through prev_ and next_.
  struct FreeList {
    BlockId head = kNil, tail = kNil;
    int32_t size = 0;
  };

  // The list a free `block` is on: by whether it holds a cached prefix.
  FreeList& ListOf(BlockId block) {
    return hash_[block].has_value() ? cached_free_ : empty_free_[GroupOf(block)];
  }
  void PushFree(BlockId block);    // onto ListOf(block)'s tail
  void UnlinkFree(BlockId block);  // off ListOf(block)
  void PushTail(FreeList& list, BlockId block);
  void Unlink(FreeList& list, BlockId block);
  // Whether Allocate takes group x's empty blocks before group y's: group 0
  // first, then the one holding more, then the lower id.
  bool FillsBefore(int32_t x, int32_t y) const;
  // The group Allocate takes empty blocks from next; -1 when none is empty.
  int32_t NextGroupToFill() const;
  // Of the groups `eligible` admits, the one `before` ranks first (the lowest
  // id among equals); -1 when none is. O(groups). Defined in the .cc, its
  // only user.
  template <typename Eligible, typename Before>
  int32_t PickGroup(Eligible eligible, Before before) const;
  // Whether group x holds more blocks than group y.
  bool Fuller(int32_t x, int32_t y) const;
  void CheckBlock(BlockId block) const;
  // Removes `block`'s prefix-cache entry, if it has one.
  void Uncache(BlockId block);
  enum class GroupState : uint8_t { kUnbacked, kActive, kDraining };

  BlockId GroupBegin(int32_t group) const { return group * group_blocks_; }
  BlockId GroupEnd(int32_t group) const {
    return std::min(num_blocks_, (group + 1) * group_blocks_);
  }
  // The group's first block that can be handed out: the null block never is.
  BlockId FirstUsable(int32_t group) const { return std::max(GroupBegin(group), kNullBlock + 1); }
  int32_t UsableInGroup(int32_t group) const { return GroupEnd(group) - FirstUsable(group); }
  bool InActiveGroup(BlockId block) const { return state_[GroupOf(block)] == GroupState::kActive; }
  void Drain(int32_t group);
  void Undrain(int32_t group);
  // Whether no block of any group is held. O(groups).
  bool NoneHeld() const;

  int32_t num_blocks_;
  int32_t block_size_;
  bool prefix_caching_;
  int32_t group_blocks_;
  int32_t max_groups_;
  int32_t groups_backed_ = 0;
  int32_t groups_draining_ = 0;
  int32_t num_usable_ = 0;
  std::vector<GroupState> state_;               // [max_groups]
  std::vector<int32_t> held_;                   // [max_groups] blocks with refcount > 0
  std::vector<int32_t> ref_;                    // [num_blocks] refcount
  std::vector<std::optional<BlockHash>> hash_;  // [num_blocks] cached content, if any
  // Free list links over block ids ([num_blocks] each), kNil terminated; a
  // block is on one list exactly when its refcount is 0 and its group is
  // active (the null block never is).
  std::vector<int32_t> prev_, next_;
  FreeList cached_free_;              // eviction order, least recently freed first
  std::vector<FreeList> empty_free_;  // [max_groups] in the order freed
  int32_t num_free_ = 0;
  absl::flat_hash_map<BlockHash, BlockId> cached_;
  PrefixIndex* index_ = nullptr;  // mirrors cached_'s keys, when set
  BlockAllocatorStats stats_;
};

}  // namespace cohost::runtime
