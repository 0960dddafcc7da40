// Sequence-level KV allocation on top of BlockAllocator: prefix-cache lookup
// for a sequence about to start, all-or-nothing slot allocation for a step's new
// tokens, caching of newly full blocks, and freeing.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/batching/block_allocator.h"
#include "runtime/batching/sequence.h"

namespace cohost::runtime {

class KvCacheManager {
 public:
  KvCacheManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching);

  // For a sequence with no blocks: the cached blocks of its longest cached
  // prefix of full blocks (its tokens, prompt and any generated ones, salted with
  // seq.cache_salt), never covering the last token, which must be computed to
  // get logits. Fills seq.block_hashes for its full blocks. Takes no references.
  std::vector<BlockId> FindCachedPrefix(Sequence& seq);

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

 private:
  BlockAllocator allocator_;
  bool prefix_caching_;
};

}  // namespace cohost::runtime
