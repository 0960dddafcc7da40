// BlockAllocator: refcounted KV blocks, the free list in eviction order and the
// prefix-cache map. Every operation is O(1) per block touched.

#include "runtime/batching/block_allocator.h"

#include <bit>

#include "absl/strings/str_format.h"
#include "runtime/batching/kv_invariant.h"

namespace cohost::runtime {
namespace {

// 64-bit multiplicative constants (odd, high entropy; the xxhash64 primes).
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;

// Absorbs one 64-bit word: every input bit reaches every state bit after a
// couple of rounds, and the rotate keeps rounds non-commutative, so swapping
// two tokens changes the hash.
inline uint64_t Absorb(uint64_t acc, uint64_t word) {
  acc += word * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}

// Final avalanche, so that nearby inputs land far apart in the map.
inline uint64_t Avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace

BlockAllocator::BlockAllocator(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching,
                               int32_t group_blocks, int32_t initial_groups)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(enable_prefix_caching),
      group_blocks_(group_blocks > 0 ? group_blocks : std::max(num_blocks, 1)),
      max_groups_((num_blocks + group_blocks_ - 1) / group_blocks_),
      groups_backed_(initial_groups < 0 ? max_groups_ : initial_groups),
      ref_(num_blocks, 0),
      hash_(num_blocks),
      prev_(num_blocks, kNil),
      next_(num_blocks, kNil) {
  COHOST_KV_CHECK(num_blocks >= 1, "num_blocks %d (the null block needs one)", num_blocks);
  COHOST_KV_CHECK(block_size >= 1, "block_size %d", block_size);
  COHOST_KV_CHECK(groups_backed_ >= 0 && groups_backed_ <= max_groups_, "%d groups backed of %d",
                  groups_backed_, max_groups_);
  // Initially every usable block is free, handed out in id order.
  for (BlockId b = 1; b < active_end(); ++b) PushFreeTail(b);
  stats_.num_blocks = num_usable();
}

BlockId BlockAllocator::active_end() const {
  return std::min(num_blocks_, (groups_backed_ - groups_draining_) * group_blocks_);
}

void BlockAllocator::AddGroup() {
  COHOST_KV_CHECK(groups_draining_ == 0, "AddGroup while %d groups drain", groups_draining_);
  COHOST_KV_CHECK(groups_backed_ < max_groups_, "AddGroup: all %d groups backed", max_groups_);
  const int32_t g = groups_backed_++;
  for (BlockId b = std::max(GroupBegin(g), kNullBlock + 1); b < GroupEnd(g); ++b) PushFreeTail(b);
  stats_.num_blocks = num_usable();
}

int32_t BlockAllocator::StartDraining(int32_t n) {
  int32_t started = 0;
  // Group 0 stays: it holds the null block every block table pads with.
  while (started < n && groups_backed_ - groups_draining_ > 1) {
    const int32_t g = groups_backed_ - groups_draining_ - 1;
    for (BlockId b = GroupBegin(g); b < GroupEnd(g); ++b) {
      if (ref_[b] == 0) {
        Unlink(b);
        if (hash_[b].has_value()) --num_cached_free_;
      }
      Uncache(b);
    }
    ++groups_draining_;
    ++started;
  }
  stats_.num_blocks = num_usable();
  return started;
}

int32_t BlockAllocator::StopDraining(int32_t n) {
  int32_t stopped = 0;
  while (stopped < n && groups_draining_ > 0) {
    const int32_t g = groups_backed_ - groups_draining_;
    --groups_draining_;
    for (BlockId b = GroupBegin(g); b < GroupEnd(g); ++b) {
      if (ref_[b] == 0) PushFreeTail(b);
    }
    ++stopped;
  }
  stats_.num_blocks = num_usable();
  return stopped;
}

int32_t BlockAllocator::TakeDrainedGroups() {
  int32_t taken = 0;
  while (groups_draining_ > 0) {
    const int32_t g = groups_backed_ - 1;
    bool held = false;
    for (BlockId b = GroupBegin(g); b < GroupEnd(g) && !held; ++b) held = ref_[b] > 0;
    if (held) break;
    --groups_backed_;
    --groups_draining_;
    ++taken;
  }
  return taken;
}

void BlockAllocator::Uncache(BlockId b) {
  if (!hash_[b].has_value()) return;
  auto it = cached_.find(*hash_[b]);
  COHOST_KV_CHECK(it != cached_.end() && it->second == b,
                  "block %d holds hash %x that the map does not point back to", b, *hash_[b]);
  cached_.erase(it);
  if (index_ != nullptr) index_->Erase(*hash_[b]);
  hash_[b].reset();
}

BlockHash BlockAllocator::HashBlock(BlockHash parent, absl::Span<const int32_t> tokens,
                                    uint64_t salt) {
  uint64_t h = kP4;
  h = Absorb(h, parent);
  h = Absorb(h, salt);
  for (int32_t t : tokens) h = Absorb(h, static_cast<uint32_t>(t));
  h ^= static_cast<uint64_t>(tokens.size()) * kP3;
  h = Avalanche(h);
  // 0 means "no parent" to the next block; keep it out of the range so a chain
  // can never look like it restarts. (A 64-bit collision between different
  // contents is ~n^2/2^65 for n cached blocks: negligible, and accepted.)
  return h == 0 ? 1 : h;
}

std::vector<BlockId> BlockAllocator::LookupPrefix(absl::Span<const BlockHash> hashes) {
  std::vector<BlockId> found;
  if (!prefix_caching_) return found;
  for (BlockHash h : hashes) {
    ++stats_.prefix_queries;
    auto it = cached_.find(h);
    if (it == cached_.end()) break;
    ++stats_.prefix_hits;
    found.push_back(it->second);
  }
  return found;
}

int32_t BlockAllocator::CachedPrefixLength(absl::Span<const BlockHash> hashes) const {
  if (!prefix_caching_) return 0;
  int32_t n = 0;
  while (n < static_cast<int32_t>(hashes.size()) && cached_.contains(hashes[n])) ++n;
  return n;
}

void BlockAllocator::Acquire(absl::Span<const BlockId> blocks) {
  for (BlockId b : blocks) {
    CheckBlock(b);
    if (ref_[b] == 0) {
      // A free block can only be wanted again for its cached content.
      COHOST_KV_CHECK(hash_[b].has_value(), "acquiring free block %d that holds no cached prefix",
                      b);
      Unlink(b);
      --num_cached_free_;
    }
    ++ref_[b];
  }
}

std::optional<std::vector<BlockId>> BlockAllocator::Allocate(int32_t n) {
  COHOST_KV_CHECK(n >= 0, "Allocate(%d)", n);
  if (n > num_free_) return std::nullopt;
  std::vector<BlockId> out;
  out.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    BlockId b = head_;
    Unlink(b);
    if (hash_[b].has_value()) {
      // Least recently freed cached block: its content is about to be overwritten.
      Uncache(b);
      --num_cached_free_;
      ++stats_.evictions;
    }
    ref_[b] = 1;
    out.push_back(b);
  }
  return out;
}

void BlockAllocator::Cache(BlockId block, BlockHash hash) {
  if (!prefix_caching_) return;
  CheckBlock(block);
  COHOST_KV_CHECK(ref_[block] > 0, "caching block %d that nobody holds", block);
  if (block >= active_end()) return;  // draining: about to be given back, not shared
  if (hash_[block].has_value()) {
    // Already cached (a shared prefix block, or cached twice): must be the same content.
    COHOST_KV_CHECK(*hash_[block] == hash, "block %d cached as %x, now as %x", block, *hash_[block],
                    hash);
    return;
  }
  // try_emplace keeps an existing entry: that other block stays the shared
  // copy, and this duplicate is simply not shared.
  auto [it, inserted] = cached_.try_emplace(hash, block);
  if (!inserted) return;
  hash_[block] = hash;
  if (index_ != nullptr) index_->Insert(hash);
}

void BlockAllocator::MirrorInto(PrefixIndex* index) {
  index_ = index;
  if (index_ == nullptr) return;
  for (const auto& [hash, block] : cached_) index_->Insert(hash);
}

void BlockAllocator::Release(absl::Span<const BlockId> blocks) {
  for (BlockId b : blocks) {
    CheckBlock(b);
    COHOST_KV_CHECK(ref_[b] > 0, "releasing block %d with refcount %d (double release?)", b,
                    ref_[b]);
    // A block of a draining group rests off the list until its group is taken.
    if (--ref_[b] == 0 && b < active_end()) {
      PushFreeTail(b);
      if (hash_[b].has_value()) ++num_cached_free_;
    }
  }
}

int32_t BlockAllocator::RefCount(BlockId block) const {
  COHOST_KV_CHECK(block >= 0 && block < num_blocks_, "block %d out of [0, %d)", block, num_blocks_);
  return ref_[block];
}

std::optional<BlockHash> BlockAllocator::CachedHashOf(BlockId block) const {
  COHOST_KV_CHECK(block >= 0 && block < num_blocks_, "block %d out of [0, %d)", block, num_blocks_);
  return hash_[block];
}

BlockAllocatorStats BlockAllocator::Stats() const {
  BlockAllocatorStats s = stats_;
  s.num_free = num_free_;
  s.num_cached_free = num_cached_free_;
  return s;
}

std::vector<BlockId> BlockAllocator::FreeBlocksInEvictionOrder() const {
  std::vector<BlockId> out;
  out.reserve(num_free_);
  for (BlockId b = head_; b != kNil; b = next_[b]) out.push_back(b);
  return out;
}

void BlockAllocator::PushFreeTail(BlockId b) {
  prev_[b] = tail_;
  next_[b] = kNil;
  if (tail_ == kNil) {
    head_ = b;
  } else {
    next_[tail_] = b;
  }
  tail_ = b;
  ++num_free_;
}

void BlockAllocator::Unlink(BlockId b) {
  COHOST_KV_CHECK(num_free_ > 0 && b != kNil, "unlinking block %d from an empty free list", b);
  if (prev_[b] == kNil) {
    head_ = next_[b];
  } else {
    next_[prev_[b]] = next_[b];
  }
  if (next_[b] == kNil) {
    tail_ = prev_[b];
  } else {
    prev_[next_[b]] = prev_[b];
  }
  prev_[b] = next_[b] = kNil;
  --num_free_;
}

void BlockAllocator::CheckBlock(BlockId b) const {
  COHOST_KV_CHECK(b > kNullBlock && b < num_blocks_, "block id %d out of [1, %d)", b, num_blocks_);
}

absl::Status BlockAllocator::Validate() const {
  if (ref_[kNullBlock] != 0 || hash_[kNullBlock].has_value()) {
    return absl::InternalError("the null block is referenced or cached");
  }
  // Walk the list both ways: every free block once, in matching order.
  std::vector<bool> on_list(num_blocks_, false);
  int32_t count = 0, cached_count = 0;
  BlockId prev = kNil;
  for (BlockId b = head_; b != kNil; b = next_[b]) {
    if (b <= kNullBlock || b >= num_blocks_) {
      return absl::InternalError(absl::StrFormat("free list holds bad id %d", b));
    }
    if (on_list[b]) return absl::InternalError(absl::StrFormat("free list cycles at %d", b));
    if (prev_[b] != prev) {
      return absl::InternalError(
          absl::StrFormat("block %d: prev link %d, expected %d", b, prev_[b], prev));
    }
    on_list[b] = true;
    ++count;
    if (hash_[b].has_value()) ++cached_count;
    prev = b;
  }
  if (prev != tail_) return absl::InternalError("free list tail does not end the list");
  if (count != num_free_ || cached_count != num_cached_free_) {
    return absl::InternalError(absl::StrFormat("free list has %d (%d cached), counters say %d (%d)",
                                               count, cached_count, num_free_, num_cached_free_));
  }
  const BlockId active = active_end();
  const BlockId backed = std::min(num_blocks_, groups_backed_ * group_blocks_);
  if (groups_backed_ < 0 || groups_backed_ > max_groups_ || groups_draining_ < 0 ||
      (groups_draining_ > 0 && groups_draining_ >= groups_backed_)) {
    return absl::InternalError(absl::StrFormat("%d groups backed, %d draining, of %d",
                                               groups_backed_, groups_draining_, max_groups_));
  }
  for (BlockId b = 1; b < num_blocks_; ++b) {
    if (ref_[b] < 0)
      return absl::InternalError(absl::StrFormat("block %d refcount %d", b, ref_[b]));
    if ((ref_[b] == 0 && b < active) != on_list[b]) {
      return absl::InternalError(absl::StrFormat("block %d: refcount %d but %s the free list", b,
                                                 ref_[b], on_list[b] ? "on" : "off"));
    }
    if (b >= active && hash_[b].has_value()) {
      return absl::InternalError(absl::StrFormat("block %d of a draining group is cached", b));
    }
    if (b >= backed && ref_[b] != 0) {
      return absl::InternalError(absl::StrFormat("block %d of an unbacked group is held", b));
    }
    if (hash_[b].has_value()) {
      auto it = cached_.find(*hash_[b]);
      if (it == cached_.end() || it->second != b) {
        return absl::InternalError(
            absl::StrFormat("block %d hash %x not mapped back to it", b, *hash_[b]));
      }
    }
  }
  for (const auto& [h, b] : cached_) {
    if (b <= kNullBlock || b >= num_blocks_ || hash_[b] != h) {
      return absl::InternalError(
          absl::StrFormat("map entry %x -> %d does not match the block", h, b));
    }
  }
  if (!prefix_caching_ && !cached_.empty()) {
    return absl::InternalError("prefix caching is off but blocks are cached");
  }
  if (index_ != nullptr) {
    if (index_->size() != cached_.size()) {
      return absl::InternalError(absl::StrFormat("the index mirrors %d hashes, the cache holds %d",
                                                 index_->size(), cached_.size()));
    }
    for (const auto& [h, b] : cached_) {
      if (!index_->Contains(h)) {
        return absl::InternalError(absl::StrFormat("cached hash %x missing from the index", h));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace cohost::runtime
