// BlockAllocator: allocation and release order, refcounts, the null block, the
// prefix cache (hash chaining, salts, LRU eviction) and a randomized invariant
// test against a model of the expected refcounts.

#include "runtime/batching/block_allocator.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/batching/sip_hash.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// SipHash-2-4 against the paper's vectors (key 00..0f; the messages 00..07
// and 00..0f, as little-endian words), and a key that changes every bit's
// odds: another key, another hash.
TEST(SipHashTest, GivesThePapersVectors) {
  const SipKey key{0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
  const uint64_t words[] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
  EXPECT_EQ(SipHash24(key, absl::MakeConstSpan(words, 1)), 0x93f5f5799a932462ull);
  EXPECT_EQ(SipHash24(key, words), 0x3f2acc7f57c29bdbull);
  EXPECT_NE(SipHash24(SipKey{key.k0 ^ 1, key.k1}, words), 0x3f2acc7f57c29bdbull);
}

// A block's hash depends on its parent, its tenant's salt, its tokens and
// their order and count (a trailing zero token is a token), and is the same
// within a process for the same input.
TEST(BlockAllocatorTest, BlockHashesSeparateEveryPartOfTheirInput) {
  const BlockHash h = BlockAllocator::HashBlock(0, {1, 2, 3, 4}, 0);
  EXPECT_EQ(BlockAllocator::HashBlock(0, {1, 2, 3, 4}, 0), h);
  const std::set<BlockHash> all = {
      h,
      BlockAllocator::HashBlock(5, {1, 2, 3, 4}, 0),
      BlockAllocator::HashBlock(0, {1, 2, 3, 4}, 7),
      BlockAllocator::HashBlock(0, {2, 1, 3, 4}, 0),
      BlockAllocator::HashBlock(0, {1, 2, 3}, 0),
      BlockAllocator::HashBlock(0, {1, 2, 3, 4, 0}, 0),
      BlockAllocator::HashBlock(0, {1, 2, 3, 4, 0, 0}, 0),
  };
  EXPECT_EQ(all.size(), 7u);
  EXPECT_EQ(all.count(0), 0u) << "0 is the first block's parent";
}

TEST(BlockAllocatorTest, AllocatesUntilFullThenNothingChanges) {
  BlockAllocator a(/*num_blocks=*/6, /*block_size=*/4, /*enable_prefix_caching=*/true);
  EXPECT_EQ(a.num_usable(), 5);
  EXPECT_EQ(a.num_free(), 5);
  auto first = a.Allocate(3);
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(*first, ElementsAre(1, 2, 3));  // fresh pool: id order
  EXPECT_EQ(a.num_free(), 2);

  EXPECT_FALSE(a.Allocate(3).has_value());  // all or nothing
  EXPECT_EQ(a.num_free(), 2);
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(4, 5));

  auto rest = a.Allocate(2);
  ASSERT_TRUE(rest.has_value());
  EXPECT_THAT(*rest, ElementsAre(4, 5));
  EXPECT_EQ(a.num_free(), 0);
  EXPECT_FALSE(a.Allocate(1).has_value());
  auto none = a.Allocate(0);
  ASSERT_TRUE(none.has_value());
  EXPECT_THAT(*none, IsEmpty());
  for (BlockId b = 1; b <= 5; ++b) EXPECT_EQ(a.RefCount(b), 1);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockAllocatorTest, NullBlockIsNeverHandedOut) {
  BlockAllocator a(4, 16, true);
  std::set<BlockId> seen;
  for (int round = 0; round < 5; ++round) {
    auto blocks = a.Allocate(3);
    ASSERT_TRUE(blocks.has_value());
    for (BlockId b : *blocks) {
      EXPECT_NE(b, kNullBlock);
      seen.insert(b);
    }
    a.Release(*blocks);
  }
  EXPECT_EQ(seen, (std::set<BlockId>{1, 2, 3}));
  EXPECT_EQ(a.RefCount(kNullBlock), 0);
  EXPECT_EQ(a.Stats().num_blocks, 3);

  BlockAllocator only_null(1, 16, true);
  EXPECT_EQ(only_null.num_usable(), 0);
  EXPECT_FALSE(only_null.Allocate(1).has_value());
}

TEST(BlockAllocatorTest, ReleaseOrderIsEvictionOrder) {
  BlockAllocator a(7, 4, true);
  auto blocks = a.Allocate(6);
  ASSERT_TRUE(blocks.has_value());
  a.Release({5, 2});
  a.Release({6, 1, 4});
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(5, 2, 6, 1, 4));
  auto again = a.Allocate(4);
  ASSERT_TRUE(again.has_value());
  EXPECT_THAT(*again, ElementsAre(5, 2, 6, 1));
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(4));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockAllocatorTest, RefcountsShareABlockUntilTheLastRelease) {
  BlockAllocator a(4, 4, true);
  auto blocks = a.Allocate(1);
  ASSERT_TRUE(blocks.has_value());
  const BlockId b = (*blocks)[0];
  const BlockHash h = BlockAllocator::HashBlock(0, {1, 2, 3, 4}, 0);
  a.Cache(b, h);
  EXPECT_THAT(a.LookupPrefix({h}), ElementsAre(b));
  a.Acquire({b});
  EXPECT_EQ(a.RefCount(b), 2);
  a.Release({b});
  EXPECT_EQ(a.RefCount(b), 1);
  EXPECT_EQ(a.num_free(), 2);  // still held by the second user
  a.Release({b});
  EXPECT_EQ(a.RefCount(b), 0);
  EXPECT_EQ(a.num_free(), 3);
  EXPECT_EQ(a.Stats().num_cached_free, 1);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockAllocatorTest, AcquiringAFreeCachedBlockTakesItOffTheFreeList) {
  BlockAllocator a(5, 4, true);
  auto blocks = a.Allocate(4);
  ASSERT_TRUE(blocks.has_value());
  const BlockHash h1 = BlockAllocator::HashBlock(0, {1, 1, 1, 1}, 0);
  const BlockHash h2 = BlockAllocator::HashBlock(h1, {2, 2, 2, 2}, 0);
  const BlockHash h3 = BlockAllocator::HashBlock(h2, {3, 3, 3, 3}, 0);
  a.Cache(1, h1);
  a.Cache(2, h2);
  a.Cache(3, h3);
  a.Release({3, 2, 1, 4});
  // The empty block first, then the cached ones in the order freed.
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(4, 3, 2, 1));
  a.Acquire(a.LookupPrefix({h2}));
  EXPECT_EQ(a.RefCount(2), 1);
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(4, 3, 1));  // removed from the middle
  EXPECT_EQ(a.Stats().num_cached_free, 2);
  auto fresh = a.Allocate(2);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_THAT(*fresh, ElementsAre(4, 3));
  EXPECT_EQ(a.Stats().evictions, 1) << "3 went; 2 was in use, 1 was freed later";
  EXPECT_THAT(a.LookupPrefix({h2}), ElementsAre(2));
  EXPECT_THAT(a.LookupPrefix({h1}), ElementsAre(1));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// Cached content is overwritten only when no empty block is left: an empty
// block freed after a cached one is still handed out first.
TEST(BlockAllocatorTest, EmptyBlocksAreHandedOutBeforeCachedOnesAreEvicted) {
  BlockAllocator a(5, 4, true);
  auto blocks = a.Allocate(2);
  ASSERT_TRUE(blocks.has_value());
  const BlockHash h = BlockAllocator::HashBlock(0, {7, 7, 7, 7}, 0);
  a.Cache(1, h);
  a.Release({1});
  a.Release({2});
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(3, 4, 2, 1));
  auto three = a.Allocate(3);
  ASSERT_TRUE(three.has_value());
  EXPECT_THAT(*three, ElementsAre(3, 4, 2));
  EXPECT_EQ(a.Stats().evictions, 0);
  EXPECT_THAT(a.LookupPrefix({h}), ElementsAre(1));
  auto last = a.Allocate(1);
  ASSERT_TRUE(last.has_value());
  EXPECT_THAT(*last, ElementsAre(1));
  EXPECT_EQ(a.Stats().evictions, 1);
  EXPECT_THAT(a.LookupPrefix({h}), ::testing::IsEmpty());
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockAllocatorTest, LruEvictsTheLeastRecentlyFreedCachedBlock) {
  BlockAllocator a(4, 2, true);
  auto blocks = a.Allocate(3);
  ASSERT_TRUE(blocks.has_value());
  const BlockHash h1 = BlockAllocator::HashBlock(0, {1, 1}, 0);
  const BlockHash h2 = BlockAllocator::HashBlock(0, {2, 2}, 0);
  const BlockHash h3 = BlockAllocator::HashBlock(0, {3, 3}, 0);
  a.Cache(1, h1);
  a.Cache(2, h2);
  a.Cache(3, h3);
  a.Release({2});
  a.Release({3});
  a.Release({1});
  EXPECT_EQ(a.Stats().num_cached_free, 3);

  auto one = a.Allocate(1);
  ASSERT_TRUE(one.has_value());
  EXPECT_THAT(*one, ElementsAre(2));
  EXPECT_EQ(a.Stats().evictions, 1);
  EXPECT_EQ(a.Stats().num_cached_free, 2);
  EXPECT_THAT(a.LookupPrefix({h2}), IsEmpty());
  EXPECT_THAT(a.LookupPrefix({h3}), ElementsAre(3));
  EXPECT_THAT(a.LookupPrefix({h1}), ElementsAre(1));
  EXPECT_FALSE(a.CachedHashOf(2).has_value());

  // Reusing block 1 makes it the most recently freed once released again.
  a.Acquire({1});
  a.Release({1});
  auto next = a.Allocate(1);
  ASSERT_TRUE(next.has_value());
  EXPECT_THAT(*next, ElementsAre(3));
  EXPECT_EQ(a.Stats().evictions, 2);
  EXPECT_THAT(a.LookupPrefix({h1}), ElementsAre(1));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// A lookup stops at the first miss and counts nothing: a waiting sequence's
// lookup is made again each step (counted each time, a prefix of 10 blocks
// waiting 100 steps read as 1,000 queries); the admitting one is counted.
TEST(BlockAllocatorTest, LookupStopsAtTheFirstMissAndOnlyTheAdmittingOneCounts) {
  BlockAllocator a(8, 2, true);
  const BlockHash h0 = BlockAllocator::HashBlock(0, {1, 2}, 0);
  const BlockHash h1 = BlockAllocator::HashBlock(h0, {3, 4}, 0);
  const BlockHash h2 = BlockAllocator::HashBlock(h1, {5, 6}, 0);
  const BlockHash h3 = BlockAllocator::HashBlock(h2, {7, 8}, 0);
  auto blocks = a.Allocate(4);
  ASSERT_TRUE(blocks.has_value());
  a.Cache((*blocks)[0], h0);
  a.Cache((*blocks)[1], h1);
  a.Cache((*blocks)[3], h3);  // a hole at h2: h3 must not be reached
  EXPECT_THAT(a.LookupPrefix({h0, h1, h2, h3}), ElementsAre((*blocks)[0], (*blocks)[1]));
  EXPECT_THAT(a.LookupPrefix({h2, h0}), IsEmpty());
  EXPECT_EQ(a.Stats().prefix_queries, 0);
  EXPECT_EQ(a.Stats().prefix_hits, 0);
  a.CountPrefixLookup(3, 2);
  EXPECT_EQ(a.Stats().prefix_queries, 3);
  EXPECT_EQ(a.Stats().prefix_hits, 2);
}

TEST(BlockAllocatorTest, DuplicateContentIsNotShared) {
  BlockAllocator a(4, 2, true);
  auto blocks = a.Allocate(2);
  ASSERT_TRUE(blocks.has_value());
  const BlockHash h = BlockAllocator::HashBlock(0, {9, 9}, 0);
  a.Cache(1, h);
  a.Cache(2, h);  // same content computed twice: the first copy stays the shared one
  EXPECT_THAT(a.LookupPrefix({h}), ElementsAre(1));
  EXPECT_FALSE(a.CachedHashOf(2).has_value());
  a.Cache(1, h);  // caching the same block again changes nothing
  EXPECT_EQ(a.CachedHashOf(1), h);
  a.Release({1, 2});
  EXPECT_EQ(a.Stats().num_cached_free, 1);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockAllocatorTest, HashChainsOverParentTokensAndSalt) {
  const std::vector<int32_t> t = {1, 2, 3, 4};
  const BlockHash base = BlockAllocator::HashBlock(0, t, 0);
  EXPECT_EQ(base, BlockAllocator::HashBlock(0, t, 0));  // deterministic
  EXPECT_NE(base, 0u);
  // Same block tokens at another position (another parent): another hash.
  const BlockHash parent = BlockAllocator::HashBlock(0, {5, 6, 7, 8}, 0);
  EXPECT_NE(base, BlockAllocator::HashBlock(parent, t, 0));
  // Another tenant: another hash.
  EXPECT_NE(base, BlockAllocator::HashBlock(0, t, 1));
  // Order, single-token changes and sign all matter.
  EXPECT_NE(base, BlockAllocator::HashBlock(0, {2, 1, 3, 4}, 0));
  EXPECT_NE(base, BlockAllocator::HashBlock(0, {1, 2, 3, 5}, 0));
  EXPECT_NE(base, BlockAllocator::HashBlock(0, {1, 2, 3, -4}, 0));
  // Parent and salt do not commute.
  EXPECT_NE(BlockAllocator::HashBlock(7, t, 9), BlockAllocator::HashBlock(9, t, 7));

  // No collisions among many nearby inputs (every 4-token block over 12 ids at 3 parents).
  std::set<BlockHash> seen;
  int count = 0;
  for (BlockHash p : {BlockHash{0}, base, parent}) {
    for (int32_t x = 0; x < 12 * 12 * 12 * 12; ++x) {
      std::vector<int32_t> toks = {x % 12, x / 12 % 12, x / 144 % 12, x / 1728};
      seen.insert(BlockAllocator::HashBlock(p, toks, 0));
      ++count;
    }
  }
  EXPECT_EQ(static_cast<int>(seen.size()), count);
}

TEST(BlockAllocatorTest, SaltSeparatesTenants) {
  BlockAllocator a(4, 2, true);
  auto blocks = a.Allocate(1);
  ASSERT_TRUE(blocks.has_value());
  a.Cache((*blocks)[0], BlockAllocator::HashBlock(0, {4, 2}, /*salt=*/11));
  EXPECT_THAT(a.LookupPrefix({BlockAllocator::HashBlock(0, {4, 2}, 12)}), IsEmpty());
  EXPECT_THAT(a.LookupPrefix({BlockAllocator::HashBlock(0, {4, 2}, 11)}),
              ElementsAre((*blocks)[0]));
}

TEST(BlockAllocatorTest, PrefixCachingDisabledNeverHits) {
  BlockAllocator a(4, 2, /*enable_prefix_caching=*/false);
  auto blocks = a.Allocate(1);
  ASSERT_TRUE(blocks.has_value());
  const BlockHash h = BlockAllocator::HashBlock(0, {4, 2}, 0);
  a.Cache((*blocks)[0], h);
  EXPECT_THAT(a.LookupPrefix({h}), IsEmpty());
  EXPECT_FALSE(a.CachedHashOf((*blocks)[0]).has_value());
  a.Release(*blocks);
  const BlockAllocatorStats s = a.Stats();
  EXPECT_EQ(s.num_cached_free, 0);
  EXPECT_EQ(s.prefix_hits, 0);
  EXPECT_EQ(s.evictions, 0);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

using BlockAllocatorDeathTest = ::testing::Test;

TEST(BlockAllocatorDeathTest, DoubleReleaseAndBadIdsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        BlockAllocator a(4, 2, true);
        auto b = a.Allocate(1);
        a.Release(*b);
        a.Release(*b);
      },
      "double release");
  EXPECT_DEATH(
      {
        BlockAllocator a(4, 2, true);
        a.Release({kNullBlock});
      },
      "out of");
  EXPECT_DEATH(
      {
        BlockAllocator a(4, 2, true);
        a.Acquire({2});  // free and holding no cached content
      },
      "no cached prefix");
}

// Thousands of random operations against a model of who holds what. After
// each, the allocator's own walk (Validate) and the model must agree.
TEST(BlockAllocatorTest, RandomizedOperationsKeepInvariants) {
  constexpr int32_t kBlocks = 24;
  BlockAllocator a(kBlocks, 2, true);
  std::mt19937 rng(20240611);
  auto rand = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  std::vector<int32_t> model_ref(kBlocks, 0);
  std::vector<std::vector<BlockId>> holders;  // each holder keeps one ref per listed block
  std::vector<BlockHash> known_hashes;        // hashes ever cached (some since evicted)
  int64_t expected_evictions = 0;
  int64_t hits = 0;  // blocks found by lookups

  for (int step = 0; step < 20000; ++step) {
    const int op = rand(0, 9);
    if (op <= 2) {  // allocate
      const int n = rand(0, 6);
      const int free_before = a.num_free();
      const int cached_free_before = a.Stats().num_cached_free;
      const std::vector<BlockId> order = a.FreeBlocksInEvictionOrder();
      auto got = a.Allocate(n);
      if (n > free_before) {
        EXPECT_FALSE(got.has_value());
        EXPECT_EQ(a.num_free(), free_before);
        EXPECT_EQ(a.FreeBlocksInEvictionOrder(), order);
      } else {
        ASSERT_TRUE(got.has_value());
        ASSERT_EQ(static_cast<int>(got->size()), n);
        EXPECT_TRUE(std::equal(got->begin(), got->end(), order.begin()));  // in that order
        // Only what the empty blocks could not cover is evicted.
        EXPECT_EQ(cached_free_before - a.Stats().num_cached_free,
                  std::max(0, n - (free_before - cached_free_before)));
        for (BlockId b : *got) {
          ASSERT_EQ(model_ref[b], 0);
          model_ref[b] = 1;
        }
        expected_evictions += cached_free_before - a.Stats().num_cached_free;
        holders.push_back(*got);
      }
    } else if (op <= 5 && !holders.empty()) {  // release a holder, in a random order
      const size_t i = rand(0, static_cast<int>(holders.size()) - 1);
      std::vector<BlockId> blocks = holders[i];
      std::shuffle(blocks.begin(), blocks.end(), rng);
      // Each block freed joins the tail of its list: the cached list (the
      // end of the order) or the empty one (the end of the empty blocks).
      std::vector<BlockId> freed_empty, freed_cached;
      for (BlockId b : blocks) {
        if (--model_ref[b] == 0) {
          (a.CachedHashOf(b).has_value() ? freed_cached : freed_empty).push_back(b);
        }
      }
      a.Release(blocks);
      const std::vector<BlockId> order = a.FreeBlocksInEvictionOrder();
      const auto empty_end = order.begin() + (a.num_free() - a.Stats().num_cached_free);
      ASSERT_GE(empty_end - order.begin(), static_cast<std::ptrdiff_t>(freed_empty.size()));
      ASSERT_GE(order.end() - empty_end, static_cast<std::ptrdiff_t>(freed_cached.size()));
      EXPECT_TRUE(std::equal(freed_empty.begin(), freed_empty.end(),
                             empty_end - static_cast<std::ptrdiff_t>(freed_empty.size())));
      EXPECT_TRUE(std::equal(freed_cached.begin(), freed_cached.end(),
                             order.end() - static_cast<std::ptrdiff_t>(freed_cached.size())));
      holders.erase(holders.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (op <= 7 && !holders.empty()) {  // cache a held block under a new hash
      const auto& h = holders[rand(0, static_cast<int>(holders.size()) - 1)];
      if (h.empty()) continue;
      const BlockId b = h[rand(0, static_cast<int>(h.size()) - 1)];
      const BlockHash hash = BlockAllocator::HashBlock(0, {rand(0, 1000), rand(0, 1000)}, 0);
      const bool already = a.CachedHashOf(b).has_value();
      const bool taken = !a.LookupPrefix({hash}).empty();
      if (!already) a.Cache(b, hash);
      if (!already && !taken) {
        EXPECT_EQ(a.CachedHashOf(b), hash);
        known_hashes.push_back(hash);
      }
    } else if (!known_hashes.empty()) {  // share cached blocks found by lookup
      std::vector<BlockHash> query;
      for (int k = rand(1, 3); k > 0; --k) {
        // Mostly recent hashes (likely still cached), so lookups hit often.
        const int n = static_cast<int>(known_hashes.size());
        query.push_back(known_hashes[rand(std::max(0, n - 32), n - 1)]);
      }
      std::vector<BlockId> found = a.LookupPrefix(query);
      hits += static_cast<int64_t>(found.size());
      ASSERT_LE(found.size(), query.size());
      for (size_t k = 0; k < found.size(); ++k) EXPECT_EQ(a.CachedHashOf(found[k]), query[k]);
      std::sort(found.begin(), found.end());
      found.erase(std::unique(found.begin(), found.end()), found.end());
      a.Acquire(found);
      for (BlockId b : found) ++model_ref[b];
      holders.push_back(found);
    }

    ASSERT_TRUE(a.Validate().ok()) << "step " << step << ": " << a.Validate();
    int32_t model_free = 0;
    for (BlockId b = 1; b < kBlocks; ++b) {
      ASSERT_EQ(a.RefCount(b), model_ref[b]) << "block " << b << " at step " << step;
      if (model_ref[b] == 0) ++model_free;
    }
    int64_t held_refs = 0;
    for (const auto& h : holders) held_refs += static_cast<int64_t>(h.size());
    ASSERT_EQ(std::accumulate(model_ref.begin(), model_ref.end(), int64_t{0}), held_refs);
    ASSERT_EQ(a.num_free(), model_free);
    ASSERT_EQ(a.Stats().evictions, expected_evictions);
    for (BlockId b : a.FreeBlocksInEvictionOrder()) ASSERT_EQ(model_ref[b], 0);
  }
  for (const auto& h : holders) a.Release(h);
  EXPECT_EQ(a.num_free(), a.num_usable());
  // The run exercised sharing and eviction, not just allocate/release.
  EXPECT_GT(hits, 500);
  EXPECT_GT(a.Stats().evictions, 300);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

}  // namespace
}  // namespace cohost::runtime
