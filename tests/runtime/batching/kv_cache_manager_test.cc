// KvCacheManager: prefix lookup for a new sequence (never covering its last
// token), all-or-nothing allocation with a cached prefix, caching of fully
// computed blocks, freeing, and a randomized test of many sequences.

#include "runtime/batching/kv_cache_manager.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/batching/prefix_index.h"

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

// The thread-safe PrefixIndex, and the engine thread's CachedPrefixTokens,
// answer what FindCachedPrefix would find, for the same tokens, salt and the
// same never-the-last-token rule; neither counts a query.
TEST(KvCacheManagerTest, AMirroredIndexAgreesWithFindCachedPrefix) {
  KvCacheManager kv(/*num_blocks=*/32, kBs, true);
  PrefixIndex index;
  kv.mutable_allocator().MirrorInto(&index);
  Sequence first = MakeSeq(1, Range(13));
  Prefill(kv, first);  // caches blocks [100..103], [104..107], [108..111]
  kv.Free(first);
  std::vector<int32_t> diverging = Range(13);
  diverging[6] = 7;
  const std::vector<std::pair<std::vector<int32_t>, uint64_t>> probes = {
      {Range(13), 0}, {Range(12), 0}, {Range(9), 0},  {Range(3), 0},
      {Range(20), 0}, {diverging, 0}, {Range(13), 5}, {Range(13, 101), 0}};
  RequestId id = 2;
  for (const auto& [tokens, salt] : probes) {
    Sequence s = MakeSeq(id++, tokens, salt);
    const int64_t queries = kv.Stats().prefix_queries;
    EXPECT_EQ(index.CachedPrefixTokens(tokens, kBs, salt), kv.CachedPrefixTokens(s))
        << tokens.size() << " tokens, salt " << salt;
    EXPECT_EQ(kv.Stats().prefix_queries, queries);
    const auto found = static_cast<int32_t>(kv.FindCachedPrefix(s).size()) * kBs;
    EXPECT_EQ(index.CachedPrefixTokens(tokens, kBs, salt), found)
        << tokens.size() << " tokens, salt " << salt;
  }
  EXPECT_EQ(index.CachedPrefixTokens(Range(13), kBs, 0), 12);
  EXPECT_EQ(index.CachedPrefixTokens(Range(12), kBs, 0), 8) << "never the last token";
  EXPECT_EQ(index.CachedPrefixTokens(Range(13), kBs, 5), 0) << "another tenant's salt";
  EXPECT_EQ(index.CachedPrefixTokens({}, kBs, 0), 0);

  // Evicted blocks leave the index: fill the pool with other content.
  Sequence other = MakeSeq(20, Range(31 * kBs, 5000));
  Prefill(kv, other);
  EXPECT_EQ(index.CachedPrefixTokens(Range(13), kBs, 0), 0);
  EXPECT_TRUE(kv.allocator().Validate().ok()) << kv.allocator().Validate();
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

TEST(KvCacheManagerTest, SaltSeparatesTenants) {
  KvCacheManager kv(9, kBs, true);
  Sequence a = MakeSeq(1, Range(9), /*salt=*/1);
  Prefill(kv, a);
  Sequence other_tenant = MakeSeq(2, Range(9), /*salt=*/2);
  EXPECT_THAT(kv.FindCachedPrefix(other_tenant), IsEmpty());
  Sequence same_tenant = MakeSeq(3, Range(9), /*salt=*/1);
  EXPECT_THAT(kv.FindCachedPrefix(same_tenant), ElementsAre(1, 2));
}

TEST(KvCacheManagerTest, SameBlockTokensAtAnotherPositionMiss) {
  KvCacheManager kv(9, kBs, true);
  Sequence a = MakeSeq(1, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Prefill(kv, a);
  // Block {5,6,7,8} cached behind {1,2,3,4}; behind another first block it is new.
  Sequence b = MakeSeq(2, {0, 0, 0, 0, 5, 6, 7, 8, 9});
  EXPECT_THAT(kv.FindCachedPrefix(b), IsEmpty());
  Sequence c = MakeSeq(3, {5, 6, 7, 8, 1, 2, 3, 4, 9});
  EXPECT_THAT(kv.FindCachedPrefix(c), IsEmpty());
  EXPECT_NE(b.block_hashes[1], a.block_hashes[1]);
}

// A sequence waiting for memory looks its prefix up at every step: the
// counts take the lookup that admits it alone (a 10-block prefix waiting 100
// steps read as 1,000 queries and hits).
TEST(KvCacheManagerTest, OnlyTheLookupThatAdmitsIsCounted) {
  KvCacheManager kv(9, kBs, /*enable_prefix_caching=*/true);
  Sequence a = MakeSeq(1, Range(9));
  Prefill(kv, a);  // caches its two full blocks
  kv.Free(a);
  const BlockAllocatorStats before = kv.Stats();  // a's own admission: one miss
  EXPECT_EQ(before.prefix_queries, 1);
  Sequence b = MakeSeq(2, Range(13));
  std::vector<BlockId> cached;
  for (int step = 0; step < 5; ++step) cached = kv.FindCachedPrefix(b);
  ASSERT_EQ(cached.size(), 2u);
  EXPECT_EQ(kv.Stats().prefix_queries, before.prefix_queries);
  EXPECT_EQ(kv.Stats().prefix_hits, before.prefix_hits);
  ASSERT_TRUE(kv.Allocate(b, 5, cached));
  EXPECT_EQ(kv.Stats().prefix_queries - before.prefix_queries, 3)
      << "two hits and the miss after them";
  EXPECT_EQ(kv.Stats().prefix_hits - before.prefix_hits, 2);
}

TEST(KvCacheManagerTest, PrefixCachingDisabledNeverHits) {
  KvCacheManager kv(9, kBs, /*enable_prefix_caching=*/false);
  Sequence a = MakeSeq(1, Range(9));
  Prefill(kv, a);
  kv.Free(a);
  Sequence b = MakeSeq(2, Range(9));
  EXPECT_THAT(kv.FindCachedPrefix(b), IsEmpty());
  ASSERT_TRUE(kv.Allocate(b, 9, {}));
  EXPECT_EQ(b.num_computed_tokens, 0);
  EXPECT_EQ(b.num_cached_prompt_tokens, 0);
  EXPECT_EQ(kv.Stats().prefix_hits, 0);
  EXPECT_EQ(kv.Stats().num_cached_free, 0);
}

// A cached prefix whose blocks are free (refcount 0) counts against the free
// blocks: acquiring them takes them off the free list.
TEST(KvCacheManagerTest, AllocateIsAllOrNothingWithAFreeCachedPrefix) {
  KvCacheManager kv(/*num_blocks=*/7, kBs, true);  // 6 usable
  Sequence a = MakeSeq(1, Range(9));               // 3 blocks, 2 cached
  Prefill(kv, a);
  kv.Free(a);
  Sequence hog = MakeSeq(2, Range(4, 500));  // 1 block
  ASSERT_TRUE(kv.Allocate(hog, 4, {}));
  EXPECT_EQ(kv.num_free_blocks(), 5);  // 2 of them cached

  Sequence b = MakeSeq(3, Range(20));  // shares a's 2 cached blocks, 12 tokens to go
  std::vector<BlockId> cached = kv.FindCachedPrefix(b);
  ASSERT_EQ(cached.size(), 2u);
  const std::vector<BlockId> order = kv.allocator().FreeBlocksInEvictionOrder();
  const BlockAllocatorStats before = kv.Stats();
  // 8 cached + 16 new tokens = 6 blocks: 2 acquired + 4 fresh, but only 3 others are free.
  EXPECT_FALSE(kv.Allocate(b, 16, cached));
  EXPECT_EQ(kv.num_free_blocks(), 5);
  EXPECT_EQ(kv.allocator().FreeBlocksInEvictionOrder(), order);
  EXPECT_EQ(kv.Stats().num_cached_free, before.num_cached_free);
  EXPECT_EQ(kv.Stats().evictions, before.evictions);
  EXPECT_THAT(b.block_table, IsEmpty());
  EXPECT_EQ(b.num_computed_tokens, 0);
  EXPECT_EQ(b.num_cached_prompt_tokens, 0);
  for (BlockId blk : cached) EXPECT_EQ(kv.allocator().RefCount(blk), 0);

  // Exactly what fits: 2 acquired + 3 fresh.
  ASSERT_TRUE(kv.Allocate(b, 12, cached));
  EXPECT_EQ(b.block_table.size(), 5u);
  EXPECT_EQ(b.num_computed_tokens, 8);
  EXPECT_EQ(b.num_cached_prompt_tokens, 8);
  EXPECT_EQ(kv.num_free_blocks(), 0);
  EXPECT_TRUE(kv.allocator().Validate().ok()) << kv.allocator().Validate();
}

TEST(KvCacheManagerTest, AllocateFailureLeavesARunningSequenceUnchanged) {
  KvCacheManager kv(4, kBs, true);  // 3 usable
  Sequence s = MakeSeq(1, Range(20));
  ASSERT_TRUE(kv.Allocate(s, 8, {}));
  s.num_computed_tokens = 8;
  const std::vector<BlockId> table = s.block_table;
  EXPECT_EQ(kv.BlocksNeeded(s, 12), 3);
  EXPECT_FALSE(kv.Allocate(s, 12, {}));
  EXPECT_EQ(s.block_table, table);
  EXPECT_EQ(s.num_computed_tokens, 8);
  EXPECT_EQ(kv.num_free_blocks(), 1);
  ASSERT_TRUE(kv.Allocate(s, 4, {}));
  EXPECT_EQ(kv.num_free_blocks(), 0);
}

TEST(KvCacheManagerTest, CachesOnlyFullyComputedBlocks) {
  KvCacheManager kv(9, kBs, true);
  Sequence s = MakeSeq(1, Range(10));
  EXPECT_THAT(kv.FindCachedPrefix(s), IsEmpty());
  ASSERT_TRUE(kv.Allocate(s, 6, {}));  // a first chunk of 6 tokens
  s.num_computed_tokens = 6;
  kv.CacheFullBlocks(s);
  EXPECT_EQ(s.num_cached_blocks, 1);
  EXPECT_EQ(kv.allocator().CachedHashOf(s.block_table[0]), s.block_hashes[0]);
  EXPECT_FALSE(kv.allocator().CachedHashOf(s.block_table[1]).has_value());  // half computed

  Sequence probe = MakeSeq(2, Range(12));
  EXPECT_EQ(kv.FindCachedPrefix(probe).size(), 1u);

  ASSERT_TRUE(kv.Allocate(s, 4, {}));  // the rest of the prompt
  s.num_computed_tokens = 10;
  kv.CacheFullBlocks(s);
  EXPECT_EQ(s.num_cached_blocks, 2);
  EXPECT_EQ(kv.allocator().CachedHashOf(s.block_table[1]), s.block_hashes[1]);
  EXPECT_FALSE(kv.allocator().CachedHashOf(s.block_table[2]).has_value());

  // Generated tokens fill the third block; it is cached once computed.
  s.tokens.push_back(900);  // sampled after the prompt step
  ASSERT_TRUE(kv.Allocate(s, 1, {}));
  s.num_computed_tokens = 11;
  s.tokens.push_back(901);
  kv.CacheFullBlocks(s);
  EXPECT_EQ(s.num_cached_blocks, 2);  // 12 tokens, but the 12th's K/V is not computed yet
  ASSERT_TRUE(kv.Allocate(s, 1, {}));
  s.num_computed_tokens = 12;
  s.tokens.push_back(902);
  kv.CacheFullBlocks(s);
  EXPECT_EQ(s.num_cached_blocks, 3);
  ASSERT_EQ(s.block_hashes.size(), 3u);
  EXPECT_EQ(s.block_hashes[2],
            BlockAllocator::HashBlock(s.block_hashes[1], {108, 109, 900, 901}, 0));
  EXPECT_EQ(kv.allocator().CachedHashOf(s.block_table[2]), s.block_hashes[2]);
  EXPECT_TRUE(kv.allocator().Validate().ok()) << kv.allocator().Validate();
}

// Preemption by recompute: the freed sequence finds its own blocks, generated
// tokens included, as long as they were not evicted.
TEST(KvCacheManagerTest, PreemptedSequenceRefindsItsBlocks) {
  KvCacheManager kv(9, kBs, true);
  Sequence s = MakeSeq(1, Range(6));
  Prefill(kv, s);
  s.tokens.push_back(700);           // sampled by the prompt step
  for (int32_t t = 1; t < 4; ++t) {  // 3 decode steps: 10 tokens, 9 computed
    ASSERT_TRUE(kv.Allocate(s, 1, {}));
    s.num_computed_tokens += 1;
    s.tokens.push_back(700 + t);
    kv.CacheFullBlocks(s);
  }
  EXPECT_EQ(s.num_computed_tokens, 9);
  const std::vector<BlockId> table = s.block_table;
  kv.Free(s);
  EXPECT_EQ(s.num_cached_blocks, 0);
  std::vector<BlockId> cached = kv.FindCachedPrefix(s);
  EXPECT_THAT(cached, ElementsAre(table[0], table[1]));
  ASSERT_TRUE(kv.Allocate(s, s.num_tokens() - 8, cached));
  EXPECT_EQ(s.num_computed_tokens, 8);
  EXPECT_EQ(s.num_cached_prompt_tokens, 6);  // capped at the prompt
  EXPECT_EQ(s.num_cached_blocks, 2);
}

TEST(KvCacheManagerDeathTest, StalePrefixAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        KvCacheManager kv(3, kBs, true);  // 2 usable
        Sequence a = MakeSeq(1, Range(5));
        Prefill(kv, a);
        kv.Free(a);
        Sequence b = MakeSeq(2, Range(5));
        std::vector<BlockId> cached = kv.FindCachedPrefix(b);
        Sequence other = MakeSeq(3, Range(8, 300));
        (void)kv.Allocate(other, 8, {});  // evicts the cached block behind b's back
        (void)kv.Allocate(b, 1, cached);
      },
      "no longer holds its content");
}

// The pool agrees with the live sequences: refcounts are the number of block
// tables holding each block, the free count follows, and a cached block of a
// sequence is cached under that sequence's hash.
void CheckConsistent(const KvCacheManager& kv, const std::vector<std::unique_ptr<Sequence>>& live) {
  EXPECT_TRUE(kv.allocator().Validate().ok()) << kv.allocator().Validate();
  std::vector<int32_t> refs(kv.num_usable_blocks() + 1, 0);
  for (const auto& seq : live) {
    EXPECT_GE(static_cast<int32_t>(seq->block_table.size()) * kBs, seq->num_computed_tokens);
    for (BlockId b : seq->block_table) ++refs[b];
    for (int32_t i = 0; i < seq->num_cached_blocks; ++i) {
      auto h = kv.allocator().CachedHashOf(seq->block_table[i]);
      if (h.has_value()) {
        EXPECT_EQ(*h, seq->block_hashes[i]);
      }
    }
  }
  int32_t free_count = 0;
  for (BlockId b = 1; b < kv.num_usable_blocks() + 1; ++b) {
    EXPECT_EQ(kv.allocator().RefCount(b), refs[b]) << "block " << b;
    free_count += refs[b] == 0;
  }
  EXPECT_EQ(kv.num_free_blocks(), free_count);
}

// Many sequences with shared prefixes, chunked prefill, decoding, preemption
// and finishing, against a model of the pool's content: every slot records the
// (salt, tokens up to and including it) whose K/V it holds, so a reused block
// must hold exactly the reusing sequence's prefix.
TEST(KvCacheManagerTest, RandomizedSequencesServeOnlyTheirOwnPrefix) {
  constexpr int32_t kBlocks = 20;
  KvCacheManager kv(kBlocks, kBs, true);
  std::mt19937 rng(7);
  auto rand = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Slot {
    uint64_t salt = 0;
    std::vector<int32_t> prefix;
  };
  std::vector<std::vector<Slot>> content(kBlocks, std::vector<Slot>(kBs));
  const std::vector<std::vector<int32_t>> stems = {Range(12, 0), Range(9, 50), Range(5, 90)};

  std::vector<std::unique_ptr<Sequence>> live;
  RequestId next_id = 1;
  int64_t finished = 0, preempted = 0, reused_tokens = 0;
  for (int step = 0; step < 5000; ++step) {
    if (live.size() < 6 && rand(0, 2) == 0) {  // a new request
      std::vector<int32_t> prompt = stems[rand(0, 2)];
      prompt.resize(rand(1, static_cast<int>(prompt.size())));
      for (int k = rand(0, 10); k > 0; --k) prompt.push_back(rand(0, 3));
      live.push_back(std::make_unique<Sequence>(MakeSeq(next_id++, prompt, rand(0, 1))));
    }
    if (live.empty()) continue;
    Sequence& s = *live[rand(0, static_cast<int>(live.size()) - 1)];
    std::vector<BlockId> cached;
    if (s.block_table.empty()) cached = kv.FindCachedPrefix(s);
    for (size_t i = 0; i < cached.size(); ++i) {
      for (int32_t r = 0; r < kBs; ++r) {
        const int32_t pos = static_cast<int32_t>(i) * kBs + r;
        const Slot& slot = content[cached[i]][r];
        ASSERT_EQ(slot.salt, s.cache_salt);
        ASSERT_EQ(slot.prefix, std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + pos + 1))
            << "block " << cached[i] << " row " << r;
      }
    }
    const int32_t uncomputed = s.num_uncomputed() - static_cast<int32_t>(cached.size()) * kBs;
    const int32_t n = std::min(uncomputed, rand(1, 7));  // a chunk, or a decode
    const int32_t free_before = kv.num_free_blocks();
    if (!kv.Allocate(s, n, cached)) {
      ASSERT_EQ(kv.num_free_blocks(), free_before);
      // Preempt (recompute) the sequence that could not grow.
      kv.Free(s);
      ++preempted;
      CheckConsistent(kv, live);
      ASSERT_FALSE(HasFailure()) << "after preempting at step " << step;
      continue;
    }
    reused_tokens += static_cast<int64_t>(cached.size()) * kBs;
    for (int32_t p = s.num_computed_tokens; p < s.num_computed_tokens + n; ++p) {
      const BlockId b = s.block_table[p / kBs];
      ASSERT_EQ(kv.allocator().RefCount(b), 1) << "writing into a shared block";
      content[b][p % kBs] = {s.cache_salt,
                             std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + p + 1)};
    }
    s.num_computed_tokens += n;
    if (s.num_uncomputed() == 0) s.tokens.push_back(rand(0, 3));  // sample
    kv.CacheFullBlocks(s);
    if (s.num_generated() >= s.max_tokens || rand(0, 30) == 0) {  // finish or abort
      kv.Free(s);
      live.erase(
          std::find_if(live.begin(), live.end(), [&](const auto& p) { return p.get() == &s; }));
      ++finished;
    }

    CheckConsistent(kv, live);
    ASSERT_FALSE(HasFailure()) << "at step " << step;
  }
  for (auto& seq : live) kv.Free(*seq);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_usable_blocks());
  // The run exercised what it claims to.
  EXPECT_GT(finished, 50);
  EXPECT_GT(preempted, 5);
  EXPECT_GT(reused_tokens, 200);
  EXPECT_GT(kv.Stats().evictions, 10);
}

}  // namespace
}  // namespace cohost::runtime
