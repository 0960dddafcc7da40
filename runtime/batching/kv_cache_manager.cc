// KvCacheManager: a sequence's block table over the BlockAllocator. Allocation
// is planned first and applied only when it fits, so a failed Allocate leaves
// the pool (counts and LRU order) and the sequence exactly as they were.

#include "runtime/batching/kv_cache_manager.h"

#include <algorithm>

#include "runtime/batching/kv_invariant.h"

namespace cohost::runtime {
namespace {

int32_t CeilDiv(int32_t a, int32_t b) { return (a + b - 1) / b; }

// Extends seq.block_hashes to cover the first `num_blocks` full blocks of its
// tokens. Tokens are append-only, so hashes computed earlier stay valid.
void ExtendHashes(Sequence& seq, int32_t num_blocks, int32_t block_size) {
  COHOST_KV_CHECK(static_cast<int64_t>(num_blocks) * block_size <= seq.num_tokens(),
                  "seq %d: hashing %d blocks of %d tokens but it has %d tokens", seq.id, num_blocks,
                  block_size, seq.num_tokens());
  seq.block_hashes.reserve(num_blocks);
  for (auto i = static_cast<int32_t>(seq.block_hashes.size()); i < num_blocks; ++i) {
    BlockHash parent = i == 0 ? 0 : seq.block_hashes[i - 1];
    absl::Span<const int32_t> tokens(seq.tokens.data() + static_cast<size_t>(i) * block_size,
                                     block_size);
    seq.block_hashes.push_back(BlockAllocator::HashBlock(parent, tokens, seq.cache_salt));
  }
}

}  // namespace

KvCacheManager::KvCacheManager(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching,
                               int32_t group_blocks, int32_t initial_groups)
    : allocator_(num_blocks, block_size, enable_prefix_caching, group_blocks, initial_groups),
      prefix_caching_(enable_prefix_caching) {}

std::vector<BlockId> KvCacheManager::FindCachedPrefix(Sequence& seq) {
  COHOST_KV_CHECK(seq.block_table.empty(), "seq %d: FindCachedPrefix with %zu blocks held", seq.id,
                  seq.block_table.size());
  const int32_t bs = block_size();
  ExtendHashes(seq, seq.num_tokens() / bs, bs);
  if (!prefix_caching_) return {};
  return allocator_.LookupPrefix(
      absl::MakeConstSpan(seq.block_hashes)
          .first(BlockAllocator::CacheablePrefixBlocks(seq.num_tokens(), bs)));
}

int32_t KvCacheManager::CachedPrefixTokens(Sequence& seq) {
  COHOST_KV_CHECK(seq.block_table.empty(), "seq %d: CachedPrefixTokens with %zu blocks held",
                  seq.id, seq.block_table.size());
  if (!prefix_caching_) return 0;
  const int32_t bs = block_size();
  ExtendHashes(seq, seq.num_tokens() / bs, bs);
  return bs * allocator_.CachedPrefixLength(
                  absl::MakeConstSpan(seq.block_hashes)
                      .first(BlockAllocator::CacheablePrefixBlocks(seq.num_tokens(), bs)));
}

int32_t KvCacheManager::BlocksNeeded(const Sequence& seq, int32_t num_new_tokens) const {
  const int32_t want = CeilDiv(seq.num_computed_tokens + num_new_tokens, block_size());
  return std::max(0, want - static_cast<int32_t>(seq.block_table.size()));
}

bool KvCacheManager::Allocate(Sequence& seq, int32_t num_new_tokens,
                              const std::vector<BlockId>& cached_prefix) {
  COHOST_KV_CHECK(num_new_tokens >= 0, "seq %d: %d new tokens", seq.id, num_new_tokens);
  const bool fresh = seq.block_table.empty();
  COHOST_KV_CHECK(!fresh || seq.num_computed_tokens == 0,
                  "seq %d: no blocks but %d computed tokens", seq.id, seq.num_computed_tokens);
  COHOST_KV_CHECK(fresh || cached_prefix.empty(),
                  "seq %d: a cached prefix for a sequence that already holds blocks", seq.id);
  const int32_t bs = block_size();
  const auto num_cached = static_cast<int32_t>(cached_prefix.size());
  for (int32_t i = 0; i < num_cached; ++i) {
    // The prefix must still hold this sequence's content: a block evicted
    // between FindCachedPrefix and Allocate would serve another prompt's K/V.
    std::optional<BlockHash> h = allocator_.CachedHashOf(cached_prefix[i]);
    COHOST_KV_CHECK(i < static_cast<int32_t>(seq.block_hashes.size()) && h.has_value() &&
                        *h == seq.block_hashes[i],
                    "seq %d: cached prefix block %d (#%d) no longer holds its content", seq.id,
                    cached_prefix[i], i);
  }

  // Plan: acquiring a free cached block takes it off the free list, so it
  // counts against the free blocks available for the fresh ones.
  const int32_t computed = fresh ? num_cached * bs : seq.num_computed_tokens;
  const int32_t held = fresh ? num_cached : static_cast<int32_t>(seq.block_table.size());
  const int32_t needed = std::max(0, CeilDiv(computed + num_new_tokens, bs) - held);
  int32_t free_after_acquire = allocator_.num_free();
  for (BlockId b : cached_prefix) {
    if (allocator_.RefCount(b) == 0) --free_after_acquire;
  }
  while (needed > free_after_acquire && grow_) {
    const int32_t before = allocator_.num_free();
    if (!grow_()) break;
    free_after_acquire += allocator_.num_free() - before;
  }
  if (needed > free_after_acquire) return false;

  // Apply: nothing below can fail.
  if (fresh && prefix_caching_) {
    // What FindCachedPrefix looked up for this admission: the leading blocks
    // up to the first miss.
    const int32_t cacheable = BlockAllocator::CacheablePrefixBlocks(seq.num_tokens(), bs);
    allocator_.CountPrefixLookup(std::min(cacheable, num_cached + 1), num_cached);
  }
  if (fresh) {
    allocator_.Acquire(cached_prefix);
    seq.block_table = cached_prefix;
    seq.num_computed_tokens = computed;
    seq.num_cached_blocks = num_cached;
    // What the request found cached when it arrived (what its usage says): a
    // preempted one refinding its own blocks found nothing of another's.
    if (seq.num_preemptions == 0) {
      seq.num_cached_prompt_tokens = std::min(computed, seq.num_prompt_tokens);
    }
  }
  std::optional<std::vector<BlockId>> blocks = allocator_.Allocate(needed);
  COHOST_KV_CHECK(blocks.has_value(), "seq %d: %d blocks planned but not free", seq.id, needed);
  seq.block_table.insert(seq.block_table.end(), blocks->begin(), blocks->end());
  return true;
}

void KvCacheManager::CacheFullBlocks(Sequence& seq) {
  const int32_t bs = block_size();
  const int32_t full =
      std::min(seq.num_computed_tokens / bs, static_cast<int32_t>(seq.block_table.size()));
  if (full <= seq.num_cached_blocks) return;
  if (prefix_caching_) {
    ExtendHashes(seq, full, bs);
    for (int32_t i = seq.num_cached_blocks; i < full; ++i) {
      allocator_.Cache(seq.block_table[i], seq.block_hashes[i]);
    }
  }
  seq.num_cached_blocks = full;
}

void KvCacheManager::Free(Sequence& seq) {
  // Tail first: a sequence's last blocks are the least likely to be shared, so
  // they should be evicted before its head.
  std::vector<BlockId> reversed(seq.block_table.rbegin(), seq.block_table.rend());
  allocator_.Release(reversed);
  seq.block_table.clear();
  seq.num_computed_tokens = 0;
  seq.num_cached_blocks = 0;
}

}  // namespace cohost::runtime
