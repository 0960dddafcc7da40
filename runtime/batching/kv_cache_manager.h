// Sequence-level KV allocation on top of BlockAllocator: prefix-cache lookup
// for a sequence about to start, all-or-nothing slot allocation for a step's new
// tokens, caching of newly full blocks, and freeing.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "runtime/batching/block_allocator.h"
#include "runtime/batching/sequence.h"

namespace cohost::runtime {

class KvCacheManager {
 public:
  // Groups as BlockAllocator's (group_blocks 0: one group; initial_groups
  // -1: all backed).
  KvCacheManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching,
                 int32_t group_blocks = 0, int32_t initial_groups = -1);

  // Called by Allocate when the free blocks fall short, before it gives up:
  // makes one more group of blocks available (a draining one back, or a new
  // one backed) and returns whether it did.
  void SetGrowth(std::function<bool()> grow_one_group) { grow_ = std::move(grow_one_group); }

  // For a sequence with no blocks: the cached blocks of its longest cached
  // prefix of full blocks (its tokens, prompt and any generated ones, salted with
  // seq.cache_salt), never covering the last token, which must be computed to
  // get logits. Fills seq.block_hashes for its full blocks. Takes no references.
  std::vector<BlockId> FindCachedPrefix(Sequence& seq);
  // The tokens that prefix covers now, for a prediction: no query counted in
  // the stats, no references.
  int32_t CachedPrefixTokens(Sequence& seq);

  // Makes seq.block_table cover num_computed_tokens + cached prefix tokens +
  // num_new_tokens: takes references on `cached_prefix` (only when the sequence
  // has no blocks yet; sets num_computed_tokens and num_cached_prompt_tokens
  // from it), then allocates the missing blocks. All or nothing: returns false
  // and changes nothing when the blocks do not fit.
  bool Allocate(Sequence& seq, int32_t num_new_tokens, const std::vector<BlockId>& cached_prefix);

  // Blocks needed to add num_new_tokens to seq (beyond those it holds).
  int32_t BlocksNeeded(const Sequence& seq, int32_t num_new_tokens) const;

  // After a step computed tokens: caches every full block of seq whose K/V is
  // now complete, so later sequences can share it.
  void CacheFullBlocks(Sequence& seq);

  // Releases every block of seq (tail first) and resets its computed state.
  void Free(Sequence& seq);

  int32_t num_free_blocks() const { return allocator_.num_free(); }
  int32_t num_usable_blocks() const { return allocator_.num_usable(); }
  int32_t block_size() const { return allocator_.block_size(); }
  BlockAllocatorStats Stats() const { return allocator_.Stats(); }
  const BlockAllocator& allocator() const { return allocator_; }
  // Growing and shrinking (see BlockAllocator).
  BlockAllocator& mutable_allocator() { return allocator_; }

 private:
  BlockAllocator allocator_;
  std::function<bool()> grow_;
  bool prefix_caching_;
};

}  // namespace cohost::runtime
