// BlockAllocator: refcounted KV blocks, the free lists and the prefix-cache
// map. Acquire, Release and Cache are O(1) per block; Allocate adds a scan of
// the groups each time it moves to another group, and growing or draining a
// group is O(its blocks + groups): groups are a few MB each, so there are few.

#include "runtime/batching/block_allocator.h"

#include <bit>
#include <chrono>
#include <cstdint>
#include <random>
#include <tuple>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "runtime/batching/kv_invariant.h"
#include "runtime/batching/sip_hash.h"

namespace cohost::runtime {
namespace {

// The prefix hashes' key, drawn once per process (sip_hash.h says why):
// from the OS's random source, or, where that fails (a sandbox without
// getrandom or /dev/urandom), from the clock and this process's addresses,
// weaker but never a crash on a request's first hash.
const SipKey& ProcessKey() {
  static const SipKey key = [] {
    SipKey k;
    try {
      std::random_device device;
      const auto draw = [&] { return (static_cast<uint64_t>(device()) << 32) | device(); };
      k.k0 = draw();
      k.k1 = draw();
    } catch (...) {
      const auto ticks = static_cast<uint64_t>(
          std::chrono::high_resolution_clock::now().time_since_epoch().count());
      k.k0 = ticks ^ reinterpret_cast<uintptr_t>(&k);
      k.k1 = std::rotl(ticks, 29) ^ reinterpret_cast<uintptr_t>(&ProcessKey);
    }
    return k;
  }();
  return key;
}

}  // namespace

BlockAllocator::BlockAllocator(int32_t num_blocks, int32_t block_size, bool enable_prefix_caching,
                               int32_t group_blocks, int32_t initial_groups)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(enable_prefix_caching),
      group_blocks_(group_blocks > 0 ? group_blocks : std::max(num_blocks, 1)),
      max_groups_((num_blocks + group_blocks_ - 1) / group_blocks_),
      state_(max_groups_, GroupState::kUnbacked),
      held_(max_groups_, 0),
      ref_(num_blocks, 0),
      hash_(num_blocks),
      prev_(num_blocks, kNil),
      next_(num_blocks, kNil),
      empty_free_(max_groups_) {
  COHOST_KV_CHECK(num_blocks >= 1, "num_blocks %d (the null block needs one)", num_blocks);
  COHOST_KV_CHECK(block_size >= 1, "block_size %d", block_size);
  const int32_t initial = initial_groups < 0 ? max_groups_ : initial_groups;
  COHOST_KV_CHECK(initial <= max_groups_, "%d groups backed of %d", initial, max_groups_);
  // Initially every usable block is free, handed out in id order.
  for (int32_t g = 0; g < initial; ++g) AddGroup(g);
}

int32_t BlockAllocator::NextGroupToBack() const {
  for (int32_t g = 0; g < max_groups_; ++g) {
    if (state_[g] == GroupState::kUnbacked) return g;
  }
  return -1;
}

bool BlockAllocator::IsActiveGroup(int32_t group) const {
  return group >= 0 && group < max_groups_ && state_[group] == GroupState::kActive;
}

bool BlockAllocator::IsDrainingGroup(int32_t group) const {
  return group >= 0 && group < max_groups_ && state_[group] == GroupState::kDraining;
}

int32_t BlockAllocator::HeldInGroup(int32_t group) const {
  COHOST_KV_CHECK(group >= 0 && group < max_groups_, "group %d out of [0, %d)", group, max_groups_);
  return held_[group];
}

void BlockAllocator::AddGroup(int32_t g) {
  COHOST_KV_CHECK(g >= 0 && g < max_groups_ && state_[g] == GroupState::kUnbacked,
                  "AddGroup(%d): not an unbacked group of %d", g, max_groups_);
  COHOST_KV_CHECK(g == 0 || state_[0] != GroupState::kUnbacked,
                  "AddGroup(%d) before group 0, whose null block its tables pad with", g);
  state_[g] = GroupState::kActive;
  ++groups_backed_;
  for (BlockId b = FirstUsable(g); b < GroupEnd(g); ++b) PushFree(b);
  num_usable_ += UsableInGroup(g);
}

void BlockAllocator::Drain(int32_t g) {
  for (BlockId b = FirstUsable(g); b < GroupEnd(g); ++b) {
    if (ref_[b] == 0) UnlinkFree(b);
    Uncache(b);
  }
  state_[g] = GroupState::kDraining;
  ++groups_draining_;
  num_usable_ -= UsableInGroup(g);
}

void BlockAllocator::Undrain(int32_t g) {
  state_[g] = GroupState::kActive;
  --groups_draining_;
  for (BlockId b = FirstUsable(g); b < GroupEnd(g); ++b) {
    if (ref_[b] == 0) PushFree(b);
  }
  num_usable_ += UsableInGroup(g);
}

template <typename Eligible, typename Before>
int32_t BlockAllocator::PickGroup(Eligible eligible, Before before) const {
  int32_t pick = -1;
  for (int32_t g = 0; g < max_groups_; ++g) {
    if (eligible(g) && (pick < 0 || before(g, pick))) pick = g;
  }
  return pick;
}

bool BlockAllocator::Fuller(int32_t x, int32_t y) const { return held_[x] > held_[y]; }

bool BlockAllocator::NoneHeld() const {
  return std::all_of(held_.begin(), held_.end(), [](int32_t h) { return h == 0; });
}

int32_t BlockAllocator::StartDraining(int32_t n) {
  int32_t started = 0;
  for (; started < n; ++started) {
    // Ties go to the later group: the highest id. Group 0 last: a block
    // table may refer to its null block while any block is held.
    int32_t pick =
        PickGroup([this](int32_t g) { return g > 0 && state_[g] == GroupState::kActive; },
                  [this](int32_t x, int32_t y) { return !Fuller(x, y); });
    if (pick < 0 && max_groups_ > 0 && state_[0] == GroupState::kActive && NoneHeld() &&
        std::count(state_.begin(), state_.end(), GroupState::kActive) == 1) {
      pick = 0;
    }
    if (pick < 0) break;
    Drain(pick);
  }
  return started;
}

int32_t BlockAllocator::StopDraining(int32_t n) {
  int32_t stopped = 0;
  for (; stopped < n; ++stopped) {
    const int32_t pick = PickGroup([this](int32_t g) { return state_[g] == GroupState::kDraining; },
                                   [this](int32_t x, int32_t y) { return Fuller(x, y); });
    if (pick < 0) break;
    Undrain(pick);
  }
  return stopped;
}

bool BlockAllocator::StopDrainingOneWithRoom() {
  const int32_t pick = PickGroup(
      [this](int32_t g) {
        return state_[g] == GroupState::kDraining && held_[g] < UsableInGroup(g);
      },
      [this](int32_t x, int32_t y) { return Fuller(x, y); });
  if (pick < 0) return false;
  Undrain(pick);
  return true;
}

int32_t BlockAllocator::DrainEmptyInstead() {
  int32_t swapped = 0;
  while (true) {
    const int32_t fullest =
        PickGroup([this](int32_t g) { return state_[g] == GroupState::kDraining && held_[g] > 0; },
                  [this](int32_t x, int32_t y) { return Fuller(x, y); });
    const int32_t empty = PickGroup(
        [this](int32_t g) { return g > 0 && state_[g] == GroupState::kActive && held_[g] == 0; },
        [](int32_t, int32_t) { return false; });
    if (fullest < 0 || empty < 0) return swapped;
    Undrain(fullest);
    Drain(empty);
    ++swapped;
  }
}

std::vector<int32_t> BlockAllocator::TakeDrainedGroups() {
  std::vector<int32_t> taken;
  for (int32_t g = 1; g < max_groups_ && groups_draining_ > 0; ++g) {
    if (state_[g] != GroupState::kDraining || held_[g] > 0) continue;
    state_[g] = GroupState::kUnbacked;
    --groups_backed_;
    --groups_draining_;
    taken.push_back(g);
  }
  // The null block's group last, once nothing can refer to it: no block held,
  // no other group backed.
  if (max_groups_ > 0 && state_[0] == GroupState::kDraining && groups_backed_ == 1 && NoneHeld()) {
    state_[0] = GroupState::kUnbacked;
    --groups_backed_;
    --groups_draining_;
    taken.insert(taken.begin(), 0);
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
  // The parent, the salt, the count, then the tokens two to a word.
  absl::InlinedVector<uint64_t, 40> words = {parent, salt, tokens.size()};  // 64-token blocks
  for (size_t i = 0; i < tokens.size(); i += 2) {
    const uint64_t hi = i + 1 < tokens.size() ? static_cast<uint32_t>(tokens[i + 1]) : 0;
    words.push_back(static_cast<uint32_t>(tokens[i]) | (hi << 32));
  }
  const uint64_t h = SipHash24(ProcessKey(), words);
  // 0 means "no parent" to the next block; keep it out of the range so a chain
  // can never look like it restarts. (Keyed, a 64-bit collision between
  // different contents is ~n^2/2^65 for n cached blocks, and no client can
  // search for one: negligible, and accepted.)
  return h == 0 ? 1 : h;
}

std::vector<BlockId> BlockAllocator::LookupPrefix(absl::Span<const BlockHash> hashes) {
  std::vector<BlockId> found;
  if (!prefix_caching_) return found;
  for (BlockHash h : hashes) {
    auto it = cached_.find(h);
    if (it == cached_.end()) break;
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
      UnlinkFree(b);
      ++held_[GroupOf(b)];
    }
    ++ref_[b];
  }
}

std::optional<std::vector<BlockId>> BlockAllocator::Allocate(int32_t n) {
  COHOST_KV_CHECK(n >= 0, "Allocate(%d)", n);
  if (n > num_free_) return std::nullopt;
  std::vector<BlockId> out;
  out.reserve(n);
  const auto take = [&](BlockId b) {
    UnlinkFree(b);
    ref_[b] = 1;
    ++held_[GroupOf(b)];
    out.push_back(b);
  };
  // Empty blocks, a group at a time.
  while (static_cast<int32_t>(out.size()) < n && num_free_ > cached_free_.size) {
    const int32_t g = NextGroupToFill();
    while (static_cast<int32_t>(out.size()) < n && empty_free_[g].size > 0) {
      take(empty_free_[g].head);
    }
  }
  while (static_cast<int32_t>(out.size()) < n) {
    // The least recently freed cached block: its content is about to be overwritten.
    const BlockId b = cached_free_.head;
    take(b);
    Uncache(b);
    ++stats_.evictions;
  }
  return out;
}

void BlockAllocator::Cache(BlockId block, BlockHash hash) {
  if (!prefix_caching_) return;
  CheckBlock(block);
  COHOST_KV_CHECK(ref_[block] > 0, "caching block %d that nobody holds", block);
  if (!InActiveGroup(block)) return;  // draining: about to be given back, not shared
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
    if (--ref_[b] > 0) continue;
    --held_[GroupOf(b)];
    // A block of a draining group rests off the list until its group is taken.
    if (InActiveGroup(b)) PushFree(b);
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
  s.num_blocks = num_usable_;
  s.num_free = num_free_;
  s.num_cached_free = cached_free_.size;
  return s;
}

bool BlockAllocator::FillsBefore(int32_t x, int32_t y) const {
  // Group 0 is never given back, so using it costs nothing; then the fullest.
  return std::make_tuple(x != 0, -held_[x], x) < std::make_tuple(y != 0, -held_[y], y);
}

int32_t BlockAllocator::NextGroupToFill() const {
  return PickGroup([this](int32_t g) { return empty_free_[g].size > 0; },
                   [this](int32_t x, int32_t y) { return FillsBefore(x, y); });
}

std::vector<BlockId> BlockAllocator::FreeBlocksInEvictionOrder() const {
  std::vector<BlockId> out;
  out.reserve(num_free_);
  std::vector<int32_t> groups;
  for (int32_t g = 0; g < max_groups_; ++g) {
    if (empty_free_[g].size > 0) groups.push_back(g);
  }
  // Allocating from a group only makes it fuller: it stays first until its
  // empty blocks run out, so this is the order Allocate takes them in.
  std::sort(groups.begin(), groups.end(),
            [this](int32_t x, int32_t y) { return FillsBefore(x, y); });
  for (int32_t g : groups) {
    for (BlockId b = empty_free_[g].head; b != kNil; b = next_[b]) out.push_back(b);
  }
  for (BlockId b = cached_free_.head; b != kNil; b = next_[b]) out.push_back(b);
  return out;
}

void BlockAllocator::PushFree(BlockId b) {
  PushTail(ListOf(b), b);
  ++num_free_;
}

void BlockAllocator::UnlinkFree(BlockId b) {
  COHOST_KV_CHECK(num_free_ > 0, "unlinking block %d with no block free", b);
  Unlink(ListOf(b), b);
  --num_free_;
}

void BlockAllocator::PushTail(FreeList& list, BlockId b) {
  prev_[b] = list.tail;
  next_[b] = kNil;
  if (list.tail == kNil) {
    list.head = b;
  } else {
    next_[list.tail] = b;
  }
  list.tail = b;
  ++list.size;
}

void BlockAllocator::Unlink(FreeList& list, BlockId b) {
  COHOST_KV_CHECK(list.size > 0 && b != kNil, "unlinking block %d from an empty free list", b);
  if (prev_[b] == kNil) {
    list.head = next_[b];
  } else {
    next_[prev_[b]] = next_[b];
  }
  if (next_[b] == kNil) {
    list.tail = prev_[b];
  } else {
    prev_[next_[b]] = prev_[b];
  }
  prev_[b] = next_[b] = kNil;
  --list.size;
}

void BlockAllocator::CheckBlock(BlockId b) const {
  COHOST_KV_CHECK(b > kNullBlock && b < num_blocks_, "block id %d out of [1, %d)", b, num_blocks_);
}

absl::Status BlockAllocator::Validate() const {
  if (ref_[kNullBlock] != 0 || hash_[kNullBlock].has_value()) {
    return absl::InternalError("the null block is referenced or cached");
  }
  // Walk each list: every free block once, on the list its content and group
  // say, links matching both ways.
  std::vector<bool> on_list(num_blocks_, false);
  int32_t count = 0;
  const auto walk = [&](const FreeList& list, std::optional<int32_t> group) -> absl::Status {
    const char* name = group ? "an empty-block list" : "the cached list";
    int32_t size = 0;
    BlockId prev = kNil;
    for (BlockId b = list.head; b != kNil; b = next_[b]) {
      if (b <= kNullBlock || b >= num_blocks_ || on_list[b]) {
        return absl::InternalError(
            absl::StrFormat("%s holds block %d twice or out of range", name, b));
      }
      if (prev_[b] != prev) {
        return absl::InternalError(
            absl::StrFormat("block %d: prev link %d, expected %d", b, prev_[b], prev));
      }
      if (hash_[b].has_value() == group.has_value() || (group && GroupOf(b) != *group)) {
        return absl::InternalError(absl::StrFormat("block %d is on %s of the wrong kind", b, name));
      }
      on_list[b] = true;
      ++size;
      prev = b;
    }
    if (prev != list.tail || size != list.size) {
      return absl::InternalError(
          absl::StrFormat("%s: %d blocks to its tail, its count says %d", name, size, list.size));
    }
    count += size;
    return absl::OkStatus();
  };
  if (absl::Status s = walk(cached_free_, std::nullopt); !s.ok()) return s;
  for (int32_t g = 0; g < max_groups_; ++g) {
    if (absl::Status s = walk(empty_free_[g], g); !s.ok()) return s;
  }
  if (count != num_free_) {
    return absl::InternalError(
        absl::StrFormat("the free lists hold %d blocks, the counter says %d", count, num_free_));
  }
  int32_t backed = 0, draining = 0, usable = 0;
  std::vector<int32_t> held(max_groups_, 0);
  for (int32_t g = 0; g < max_groups_; ++g) {
    backed += state_[g] != GroupState::kUnbacked;
    draining += state_[g] == GroupState::kDraining;
    if (state_[g] == GroupState::kActive) usable += UsableInGroup(g);
  }
  if (backed != groups_backed_ || draining != groups_draining_ || usable != num_usable_) {
    return absl::InternalError(
        absl::StrFormat("%d groups backed, %d draining, %d usable blocks; counters say %d, %d, %d",
                        backed, draining, usable, groups_backed_, groups_draining_, num_usable_));
  }
  if (max_groups_ > 0 && state_[0] == GroupState::kUnbacked && groups_backed_ > 0) {
    return absl::InternalError("group 0 (the null block's) is unbacked while another is backed");
  }
  for (BlockId b = 1; b < num_blocks_; ++b) {
    const GroupState state = state_[GroupOf(b)];
    if (ref_[b] < 0)
      return absl::InternalError(absl::StrFormat("block %d refcount %d", b, ref_[b]));
    if (ref_[b] > 0) ++held[GroupOf(b)];
    if ((ref_[b] == 0 && state == GroupState::kActive) != on_list[b]) {
      return absl::InternalError(absl::StrFormat("block %d: refcount %d but %s the free list", b,
                                                 ref_[b], on_list[b] ? "on" : "off"));
    }
    if (state != GroupState::kActive && hash_[b].has_value()) {
      return absl::InternalError(absl::StrFormat("block %d of an inactive group is cached", b));
    }
    if (state == GroupState::kUnbacked && ref_[b] != 0) {
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
  if (held != held_) return absl::InternalError("per-group held counts disagree with refcounts");
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
