#include "runtime/batching/prefix_index.h"

#include "runtime/batching/block_allocator.h"

namespace cohost::runtime {

void PrefixIndex::Insert(BlockHash hash) {
  std::lock_guard<std::mutex> lock(mu_);
  hashes_.insert(hash);
}

void PrefixIndex::Erase(BlockHash hash) {
  std::lock_guard<std::mutex> lock(mu_);
  hashes_.erase(hash);
}

bool PrefixIndex::Contains(BlockHash hash) const {
  std::lock_guard<std::mutex> lock(mu_);
  return hashes_.contains(hash);
}

size_t PrefixIndex::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hashes_.size();
}

int32_t PrefixIndex::CachedPrefixTokens(absl::Span<const int32_t> tokens, int32_t block_size,
                                        uint64_t salt) const {
  if (block_size <= 0) return 0;
  const int32_t max_blocks =
      BlockAllocator::CacheablePrefixBlocks(static_cast<int64_t>(tokens.size()), block_size);
  // Hashing needs no lock; each block's hash is looked up as soon as it is
  // known, and the walk stops at the first miss.
  BlockHash parent = 0;
  int32_t found = 0;
  for (; found < max_blocks; ++found) {
    parent = BlockAllocator::HashBlock(
        parent, tokens.subspan(static_cast<size_t>(found) * block_size, block_size), salt);
    std::lock_guard<std::mutex> lock(mu_);
    if (!hashes_.contains(parent)) break;
  }
  return found * block_size;
}

}  // namespace cohost::runtime
