// BlockAllocator's groups: growing a group at a time, draining the groups that
// hold the fewest blocks (nothing new placed there, their prefix-cache entries
// dropped), taking each drained one back on its own, and a randomized test of
// the invariants under all of it.

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/batching/block_allocator.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Every free block allocated, then all but `keep` released: what the
// allocator holds is exactly `keep`.
void HoldOnly(BlockAllocator& a, const std::set<BlockId>& keep) {
  auto all = a.Allocate(a.num_free());
  ASSERT_TRUE(all.has_value());
  std::vector<BlockId> release;
  for (BlockId b : *all) {
    if (!keep.contains(b)) release.push_back(b);
  }
  a.Release(release);
}

void Grow(BlockAllocator& a) {
  ASSERT_GE(a.NextGroupToBack(), 0);
  a.AddGroup(a.NextGroupToBack());
}

TEST(BlockGroupsTest, GrowsAGroupAtATime) {
  // 3 groups of 4 blocks; only group 0 (blocks 0-3, 0 the null block) backed.
  BlockAllocator a(/*num_blocks=*/12, /*block_size=*/2, true, /*group_blocks=*/4,
                   /*initial_groups=*/1);
  EXPECT_EQ(a.max_groups(), 3);
  EXPECT_EQ(a.num_usable(), 3);
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(1, 2, 3));
  EXPECT_FALSE(a.Allocate(4).has_value());
  Grow(a);
  EXPECT_EQ(a.num_groups_backed(), 2);
  EXPECT_EQ(a.num_usable(), 7);
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(1, 2, 3, 4, 5, 6, 7));
  Grow(a);
  EXPECT_EQ(a.num_usable(), 11);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsTest, StartingEmptyTheFirstGroupStillKeepsTheNullBlockOut) {
  BlockAllocator a(/*num_blocks=*/8, 2, true, /*group_blocks=*/4, /*initial_groups=*/0);
  EXPECT_EQ(a.num_usable(), 0);
  EXPECT_FALSE(a.Allocate(1).has_value());
  Grow(a);
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(1, 2, 3));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsTest, ALastGroupMayBeShort) {
  BlockAllocator a(/*num_blocks=*/10, 2, true, /*group_blocks=*/4, 1);
  EXPECT_EQ(a.max_groups(), 3);
  Grow(a);
  Grow(a);
  EXPECT_EQ(a.num_usable(), 9) << "group 2 holds blocks 8 and 9 only";
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsTest, DrainingTakesFreeAndCachedBlocksOutAndWaitsForHeldOnes) {
  BlockAllocator a(12, 2, true, 4, 3);
  // Hold 6 and 10 (groups 1 and 2); cache 5 and 9 then free them.
  auto all = a.Allocate(11);
  ASSERT_TRUE(all.has_value());
  a.Cache(5, 0x55);
  a.Cache(9, 0x99);
  std::vector<BlockId> release;
  for (BlockId b : *all) {
    if (b != 6 && b != 10) release.push_back(b);
  }
  a.Release(release);
  EXPECT_EQ(a.num_free(), 9);
  EXPECT_EQ(a.Stats().num_cached_free, 2);

  EXPECT_EQ(a.StartDraining(1), 1);  // groups 1 and 2 hold one block each: the higher, 8-11
  EXPECT_EQ(a.num_groups_draining(), 1);
  EXPECT_TRUE(a.IsDrainingGroup(2));
  EXPECT_EQ(a.num_usable(), 7);
  EXPECT_EQ(a.num_free(), 6) << "8, 9 and 11 left the free list";
  EXPECT_EQ(a.Stats().num_cached_free, 1) << "9's cache entry is gone, 5's stays";
  EXPECT_FALSE(a.CachedHashOf(9).has_value());
  EXPECT_THAT(a.LookupPrefix(std::vector<BlockHash>{0x99}), ::testing::IsEmpty());
  EXPECT_THAT(a.TakeDrainedGroups(), IsEmpty()) << "10 is still held";

  // Nothing new is placed on a draining group.
  auto six = a.Allocate(6);
  ASSERT_TRUE(six.has_value());
  for (BlockId b : *six) EXPECT_LT(b, 8);
  a.Release(*six);
  // A held block of a draining group is not cached, and rests off the list.
  a.Cache(10, 0x1010);
  EXPECT_FALSE(a.CachedHashOf(10).has_value());
  a.Release(std::vector<BlockId>{10});
  EXPECT_EQ(a.num_free(), 6);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();

  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(2));
  EXPECT_EQ(a.num_groups_backed(), 2);
  EXPECT_EQ(a.num_groups_draining(), 0);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
  EXPECT_EQ(a.NextGroupToBack(), 2);
  Grow(a);  // and it can come back
  EXPECT_EQ(a.num_usable(), 11);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsTest, StopDrainingPutsTheGroupBack) {
  BlockAllocator a(12, 2, true, 4, 3);
  ASSERT_THAT(a.Allocate(1), ::testing::Optional(ElementsAre(1)));
  EXPECT_EQ(a.StartDraining(5), 2) << "group 0 holds a block: it stays";
  EXPECT_EQ(a.num_usable(), 3);
  EXPECT_EQ(a.StopDraining(1), 1);
  EXPECT_EQ(a.num_usable(), 7) << "the lowest draining group came back";
  EXPECT_EQ(a.num_free(), 6);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(2)) << "group 2 held nothing";
  EXPECT_EQ(a.num_groups_backed(), 2);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsTest, EachDrainedGroupIsTakenOnItsOwn) {
  BlockAllocator a(12, 2, true, 4, 3);
  auto blocks = a.Allocate(11);
  ASSERT_TRUE(blocks.has_value());
  ASSERT_EQ(a.StartDraining(2), 2);  // groups 1 and 2
  // Free all of group 1 but keep block 9 of group 2: group 1 goes now.
  std::vector<BlockId> release;
  for (BlockId b : *blocks) {
    if (b != 9) release.push_back(b);
  }
  a.Release(release);
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(1));
  EXPECT_EQ(a.num_groups_backed(), 2);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
  EXPECT_EQ(a.NextGroupToBack(), 1) << "the hole is backed first";
  a.Release(std::vector<BlockId>{9});
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(2));
  EXPECT_EQ(a.num_groups_backed(), 1);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// What makes the choice page-aware: the group that can be given back soonest
// drains, whatever its place, and the one furthest from it is the first to
// come back.
TEST(BlockGroupsTest, TheGroupsHoldingTheFewestBlocksDrainFirst) {
  // 4 groups of 4: group 1 holds one block, group 2 three, group 3 two.
  BlockAllocator a(16, 2, true, 4, 4);
  HoldOnly(a, {5, 8, 9, 10, 12, 13});
  EXPECT_EQ(a.HeldInGroup(1), 1);
  EXPECT_EQ(a.HeldInGroup(2), 3);
  EXPECT_EQ(a.HeldInGroup(3), 2);

  ASSERT_EQ(a.StartDraining(1), 1);
  EXPECT_TRUE(a.IsDrainingGroup(1)) << "not the top group: it holds more";
  ASSERT_EQ(a.StartDraining(1), 1);
  EXPECT_TRUE(a.IsDrainingGroup(3));
  EXPECT_TRUE(a.IsActiveGroup(2));
  a.Release(std::vector<BlockId>{5});
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(1)) << "given back while 3 still waits";
  EXPECT_EQ(a.StopDraining(1), 1);
  EXPECT_TRUE(a.IsActiveGroup(3));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();

  // Equal holdings: the higher group drains, the lower one comes back.
  a.Release(std::vector<BlockId>{8, 9, 10, 12, 13});
  ASSERT_EQ(a.StartDraining(2), 2);
  EXPECT_TRUE(a.IsDrainingGroup(3));
  EXPECT_TRUE(a.IsDrainingGroup(2));
  ASSERT_EQ(a.StopDraining(1), 1);
  EXPECT_TRUE(a.IsActiveGroup(2));
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(3));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// A pending drain gives way to a group that emptied since, and only to one
// that is empty: a group holding some blocks never takes a drain's place.
TEST(BlockGroupsTest, AGroupThatEmptiedDrainsInPlaceOfOneStillHeld) {
  BlockAllocator a(16, 2, true, 4, 4);  // groups 1 (4-7), 2 (8-11), 3 (12-15)
  HoldOnly(a, {5, 9, 10, 12});          // group 1 holds one block, group 2 two, group 3 one
  ASSERT_EQ(a.StartDraining(1), 1);
  ASSERT_TRUE(a.IsDrainingGroup(3)) << "the higher of the two holding one";
  EXPECT_EQ(a.DrainEmptyInstead(), 0) << "no group is empty";
  a.Release(std::vector<BlockId>{5});  // group 1 is empty now
  EXPECT_EQ(a.DrainEmptyInstead(), 1);
  EXPECT_TRUE(a.IsDrainingGroup(1));
  EXPECT_TRUE(a.IsActiveGroup(3));
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(1));
  EXPECT_EQ(a.DrainEmptyInstead(), 0) << "nothing drains";
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// An engine out of blocks takes back a draining group only where that gives
// it a block: the fullest with room, never one whose blocks are all held.
TEST(BlockGroupsTest, OutOfBlocksTakesBackADrainingGroupWithRoom) {
  BlockAllocator a(12, 2, true, 4, 3);  // groups 1 (4-7), 2 (8-11)
  HoldOnly(a, {4, 5, 6, 7, 10, 11});    // group 1 full, group 2 holds two
  ASSERT_EQ(a.StartDraining(2), 2);
  EXPECT_TRUE(a.StopDrainingOneWithRoom());
  EXPECT_TRUE(a.IsActiveGroup(2));
  EXPECT_TRUE(a.IsDrainingGroup(1));
  EXPECT_FALSE(a.StopDrainingOneWithRoom()) << "group 1 has no free block";
  EXPECT_TRUE(a.IsDrainingGroup(1));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// Group 0 holds the null block, which every block table pads with: it drains
// only after every other group, and only while no block is held, so that it
// is backed whenever a table may refer to it. Then it is backed first again.
TEST(BlockGroupsTest, TheNullBlocksGroupDrainsLastAndOnlyWhenNothingIsHeld) {
  BlockAllocator a(12, 2, true, 4, 3);  // groups 0 (1-3), 1 (4-7), 2 (8-11)
  HoldOnly(a, {9});                     // group 2 holds a block
  EXPECT_EQ(a.StartDraining(3), 2) << "groups 1 and 2; group 0 stays while a block is held";
  EXPECT_TRUE(a.IsActiveGroup(0));
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(1));
  EXPECT_EQ(a.StartDraining(3), 0);
  a.Release(std::vector<BlockId>{9});
  EXPECT_EQ(a.StartDraining(3), 1) << "now nothing is held and group 0 is the last active";
  EXPECT_TRUE(a.IsDrainingGroup(0));
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
  EXPECT_THAT(a.TakeDrainedGroups(), ElementsAre(0, 2));
  EXPECT_EQ(a.num_groups_backed(), 0);
  EXPECT_EQ(a.num_usable(), 0);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
  EXPECT_EQ(a.NextGroupToBack(), 0) << "backed first again";
  Grow(a);
  EXPECT_THAT(a.Allocate(3), ::testing::Optional(ElementsAre(1, 2, 3))) << "never the null block";
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// A draining group 0 is not taken while another group is backed: a block
// table there could pad with its null block.
TEST(BlockGroupsTest, TheNullBlocksGroupIsNotTakenWhileAnotherIsBacked) {
  BlockAllocator a(12, 2, true, 4, 1);
  EXPECT_EQ(a.StartDraining(1), 1);
  EXPECT_TRUE(a.IsDrainingGroup(0));
  a.AddGroup(a.NextGroupToBack());  // group 1 backed while group 0 drains
  EXPECT_THAT(a.TakeDrainedGroups(), IsEmpty());
  EXPECT_EQ(a.num_groups_backed(), 2);
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

TEST(BlockGroupsDeathTest, NoGroupIsBackedBeforeTheNullBlocksGroup) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        BlockAllocator a(12, 2, true, 4, 0);
        a.AddGroup(1);
      },
      "before group 0");
}

// The other half of it: new blocks go to group 0 (given back last), then to
// the group already holding the most, so the emptiest stay empty, ready to go
// back without waiting for anyone.
TEST(BlockGroupsTest, NewBlocksPackOntoTheFullestGroup) {
  BlockAllocator a(12, 2, true, 4, 3);  // groups 0 (1-3), 1 (4-7), 2 (8-11)
  HoldOnly(a, {5, 6, 9});               // group 1 holds two blocks, group 2 one, group 0 none
  EXPECT_THAT(a.FreeBlocksInEvictionOrder(), ElementsAre(1, 2, 3, 4, 7, 8, 10, 11));
  auto three = a.Allocate(3);
  ASSERT_TRUE(three.has_value());
  EXPECT_THAT(*three, ElementsAre(1, 2, 3)) << "group 0 first: it is given back last";
  auto two = a.Allocate(2);
  ASSERT_TRUE(two.has_value());
  EXPECT_THAT(*two, ElementsAre(4, 7)) << "then the fullest, group 1";
  auto next = a.Allocate(1);
  ASSERT_TRUE(next.has_value());
  EXPECT_THAT(*next, ElementsAre(8)) << "then group 2";
  EXPECT_TRUE(a.Validate().ok()) << a.Validate();
}

// Random allocations, releases, caching, lookups, growth and draining; the
// invariants hold after every operation and no block outside the active
// groups is ever handed out.
TEST(BlockGroupsTest, RandomizedOperationsKeepInvariants) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    const int32_t group_blocks = 1 + static_cast<int32_t>(rng() % 5);
    const int32_t num_blocks = group_blocks * (2 + static_cast<int32_t>(rng() % 5)) -
                               static_cast<int32_t>(rng() % group_blocks);
    BlockAllocator a(num_blocks, 2, true, group_blocks, static_cast<int32_t>(rng() % 2));
    PrefixIndex index;  // Validate checks that it mirrors the cache throughout
    a.MirrorInto(&index);
    std::vector<std::vector<BlockId>> held;
    for (int op = 0; op < 300; ++op) {
      switch (rng() % 7) {
        case 0:
        case 1: {
          const std::vector<BlockId> order = a.FreeBlocksInEvictionOrder();
          auto b = a.Allocate(1 + static_cast<int32_t>(rng() % 3));
          if (b.has_value()) {
            // In the order the free lists say (group 0, the fullest, then
            // cached blocks least recently freed first).
            ASSERT_TRUE(std::equal(b->begin(), b->end(), order.begin())) << "seed " << seed;
            for (BlockId id : *b) {
              ASSERT_GT(id, kNullBlock);
              ASSERT_TRUE(a.IsActiveGroup(a.GroupOf(id))) << "seed " << seed;
            }
            held.push_back(*b);
          }
          break;
        }
        case 2:
          if (!held.empty()) {
            const size_t i = rng() % held.size();
            a.Release(held[i]);
            held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
          }
          break;
        case 3:
          if (!held.empty()) {
            const std::vector<BlockId>& h = held[rng() % held.size()];
            // Content never changes under a cached block.
            if (!a.CachedHashOf(h[0]).has_value()) a.Cache(h[0], 1 + rng() % 16);
          }
          break;
        case 4: {
          std::vector<BlockId> found = a.LookupPrefix(std::vector<BlockHash>{1 + rng() % 16});
          for (BlockId b : found) ASSERT_TRUE(a.IsActiveGroup(a.GroupOf(b))) << "seed " << seed;
          if (!found.empty()) {
            a.Acquire(found);
            held.push_back(found);
          }
          break;
        }
        case 5:
          if (a.num_groups_draining() > 0 && rng() % 2) {
            if (rng() % 2) {
              a.StopDraining(1);
            } else {
              for (int32_t g : a.TakeDrainedGroups()) ASSERT_EQ(a.HeldInGroup(g), 0);
            }
          } else if (a.NextGroupToBack() >= 0) {
            Grow(a);
          }
          break;
        case 6:
          switch (rng() % 3) {
            case 0:
              a.StartDraining(1 + static_cast<int32_t>(rng() % 2));
              break;
            case 1:
              a.DrainEmptyInstead();
              break;
            default:
              a.StopDrainingOneWithRoom();
              break;
          }
          break;
      }
      ASSERT_TRUE(a.Validate().ok()) << "seed " << seed << " op " << op << ": " << a.Validate();
    }
    for (const auto& h : held) a.Release(h);
    a.StartDraining(a.max_groups());
    a.TakeDrainedGroups();
    EXPECT_EQ(a.num_groups_backed(), 0) << "seed " << seed << ": everything released drains";
    ASSERT_TRUE(a.Validate().ok()) << a.Validate();
  }
}

}  // namespace
}  // namespace cohost::runtime
