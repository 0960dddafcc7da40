// KvCacheManager: prefix lookup for a new sequence (never covering its last
// token), all-or-nothing allocation with a cached prefix, caching of fully
// computed blocks, freeing, and a randomized test of many sequences.

#include "runtime/kv_cache_manager.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

constexpr int32_t kBs = 4;  // block size in these tests

Sequence MakeSeq(RequestId id, std::vector<int32_t> prompt, uint64_t salt = 0) {
  Sequence s;
  s.id = id;
  s.num_prompt_tokens = static_cast<int32_t>(prompt.size());
  s.tokens = std::move(prompt);
  s.max_tokens = 16;
  s.cache_salt = salt;
  return s;
}

std::vector<int32_t> Range(int32_t n, int32_t start = 100) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Runs a sequence's whole prompt through (as one chunk) and caches its blocks,
// as the scheduler's Schedule + Commit would.
void Prefill(KvCacheManager& kv, Sequence& s) {
  std::vector<BlockId> cached = kv.FindCachedPrefix(s);
  ASSERT_TRUE(kv.Allocate(s, s.num_tokens() - static_cast<int32_t>(cached.size()) * kBs, cached));
  s.num_computed_tokens = s.num_tokens();
  kv.CacheFullBlocks(s);
}

TEST(KvCacheManagerTest, AllocatesBlocksForNewTokens) {
  KvCacheManager kv(/*num_blocks=*/9, kBs, true);
  Sequence s = MakeSeq(1, Range(10));
  EXPECT_EQ(kv.BlocksNeeded(s, 10), 3);
  EXPECT_THAT(kv.FindCachedPrefix(s), IsEmpty());
  EXPECT_EQ(s.block_hashes.size(), 2u);  // two full blocks of 10 tokens
  ASSERT_TRUE(kv.Allocate(s, 10, {}));
  EXPECT_THAT(s.block_table, ElementsAre(1, 2, 3));
  EXPECT_EQ(s.num_computed_tokens, 0);  // the caller advances it after the step
  EXPECT_EQ(s.num_cached_prompt_tokens, 0);
  EXPECT_EQ(kv.num_free_blocks(), 5);

  s.num_computed_tokens = 10;
  EXPECT_EQ(kv.BlocksNeeded(s, 2), 0);  // 12 tokens fit in 3 blocks
  EXPECT_EQ(kv.BlocksNeeded(s, 3), 1);
  ASSERT_TRUE(kv.Allocate(s, 2, {}));
  EXPECT_EQ(s.block_table.size(), 3u);
  ASSERT_TRUE(kv.Allocate(s, 3, {}));
  EXPECT_THAT(s.block_table, ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(kv.num_free_blocks(), 4);

  kv.Free(s);
  EXPECT_THAT(s.block_table, IsEmpty());
  EXPECT_EQ(s.num_computed_tokens, 0);
  EXPECT_EQ(s.block_hashes.size(), 2u);  // tokens unchanged: hashes stay valid
  EXPECT_EQ(kv.num_free_blocks(), 8);
  // Tail first: the sequence's last block is the first to be reused.
  EXPECT_THAT(kv.allocator().FreeBlocksInEvictionOrder(), ElementsAre(5, 6, 7, 8, 4, 3, 2, 1));
}

TEST(KvCacheManagerTest, SecondSequenceReusesTheCachedPrefix) {
  KvCacheManager kv(9, kBs, true);
  std::vector<int32_t> shared = Range(8);  // two full blocks
  std::vector<int32_t> p1 = shared, p2 = shared;
  p1.insert(p1.end(), {1, 2, 3});
  p2.insert(p2.end(), {7, 8, 9, 10, 11});
  Sequence a = MakeSeq(1, p1), b = MakeSeq(2, p2);
  Prefill(kv, a);
  EXPECT_THAT(a.block_table, ElementsAre(1, 2, 3));

  std::vector<BlockId> cached = kv.FindCachedPrefix(b);
  EXPECT_THAT(cached, ElementsAre(1, 2));
  EXPECT_EQ(kv.BlocksNeeded(b, 5), 2);  // before Allocate it knows of no prefix
  ASSERT_TRUE(kv.Allocate(b, 5, cached));
  EXPECT_EQ(b.num_computed_tokens, 8);
  EXPECT_EQ(b.num_cached_prompt_tokens, 8);
  EXPECT_THAT(b.block_table, ElementsAre(1, 2, 4, 5));  // 13 tokens
  EXPECT_EQ(kv.allocator().RefCount(1), 2);
  EXPECT_EQ(kv.allocator().RefCount(2), 2);
  EXPECT_EQ(kv.allocator().RefCount(3), 1);

  // Freeing one keeps the shared blocks held by the other.
  kv.Free(a);
  EXPECT_EQ(kv.allocator().RefCount(1), 1);
  EXPECT_EQ(kv.allocator().RefCount(2), 1);
  EXPECT_EQ(kv.allocator().RefCount(3), 0);
  EXPECT_EQ(kv.num_free_blocks(), 4);
  kv.Free(b);
  EXPECT_EQ(kv.num_free_blocks(), 8);
  const BlockAllocatorStats st = kv.Stats();
  EXPECT_EQ(st.prefix_hits, 2);
  EXPECT_EQ(st.num_cached_free, 2);  // a's third block was never full, b never computed its own
  EXPECT_TRUE(kv.allocator().Validate().ok()) << kv.allocator().Validate();
}

TEST(KvCacheManagerTest, CachedPrefixNeverCoversTheLastToken) {
  KvCacheManager kv(9, kBs, true);
  Sequence a = MakeSeq(1, Range(8));  // exactly two full blocks
  Prefill(kv, a);
  EXPECT_EQ(kv.Stats().num_cached_free, 0);
  kv.Free(a);
  EXPECT_EQ(kv.Stats().num_cached_free, 2);

  Sequence same = MakeSeq(2, Range(8));
  std::vector<BlockId> cached = kv.FindCachedPrefix(same);
  EXPECT_EQ(cached.size(), 1u);  // the second block holds the last token: recompute it
  ASSERT_TRUE(kv.Allocate(same, 4, cached));
  EXPECT_EQ(same.num_computed_tokens, 4);
  EXPECT_EQ(same.num_uncomputed(), 4);
  EXPECT_EQ(same.block_table.size(), 2u);

  Sequence longer = MakeSeq(3, Range(9));  // one more token: both blocks usable
  EXPECT_EQ(kv.FindCachedPrefix(longer).size(), 2u);
}

}  // namespace
}  // namespace cohost::runtime
