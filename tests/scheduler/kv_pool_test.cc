// KvPool with stand-in engines: who may join, free grants, caps, reclaims
// from the engines most above their floors, preemption for an asker below its
// floor or with older work than the holder's (wound-wait), and a randomized
// test that the budget and the floors always hold and that the oldest work
// always gets memory.

#include "scheduler/kv_pool.h"

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kGroup = 100;  // the stand-in engines' group size

// An engine's KV share in whole groups: some in use by sequences, the rest
// free (given back at once when reclaimed). Used groups go too when its
// oldest work is younger than the asker's (Engine::ReclaimKv's rule).
struct FakeEngine {
  std::unique_ptr<KvPool::Account> account;
  int64_t used = 0, free = 0;                          // groups
  runtime::RequestId oldest = runtime::kPreemptNever;  // its oldest live request
  struct Reclaim {
    int64_t wanted;
    bool could_preempt;
  };
  std::vector<Reclaim> reclaims;

  bool Grow() {
    if (!account->Acquire(kGroup, oldest)) return false;
    ++used;
    return true;
  }
  void Finish(int64_t groups) {
    used -= groups;
    free += groups;
  }
  int64_t GiveBack(int64_t wanted, int64_t most, runtime::RequestId wounder) {
    const bool preempt = oldest > wounder;
    reclaims.push_back({wanted, preempt});
    const int64_t want = std::min(most / kGroup, (wanted + kGroup - 1) / kGroup);
    int64_t given = std::min(want, free);
    free -= given;
    if (preempt && given < want) {
      const int64_t more = std::min(want - given, used);
      used -= more;
      given += more;
    }
    account->Release(given * kGroup);
    return given * kGroup;
  }
};

// `group_bytes`: what the engine tells the pool it moves at a time (1: the
// floors are taken as given).
std::unique_ptr<FakeEngine> Join(KvPool& pool, const std::string& name, int64_t floor, int64_t cap,
                                 int64_t group_bytes = 1) {
  auto e = std::make_unique<FakeEngine>();
  absl::StatusOr<std::unique_ptr<KvPool::Account>> a = pool.Join(name, floor, cap);
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return nullptr;
  e->account = *std::move(a);
  FakeEngine* raw = e.get();
  e->account->SetReclaimer(
      [raw](int64_t wanted, int64_t most, runtime::RequestId wounder) {
        return raw->GiveBack(wanted, most, wounder);
      },
      group_bytes);
  return e;
}

// Floors between two groups: engines grow and give back whole groups, so a
// floor holds in whole groups (rounded down). Before, a holder above its
// floor by less than a group could give back nothing, and an asker below
// its floor by less than a group could not preempt: a request sized to the
// asker's share waited for memory forever.
TEST(KvPoolTest, FloorsHoldInWholeGroups) {
  KvPool pool("cpu", 8 * kGroup);
  const int64_t floor = 5 * kGroup / 2;  // two groups and a half
  auto a = Join(pool, "a", floor, 3 * kGroup, kGroup);
  auto b = Join(pool, "b", floor, 3 * kGroup, kGroup);
  auto c = Join(pool, "c", floor, 3 * kGroup, kGroup);
  ASSERT_TRUE(a && b && c);
  for (FakeEngine* e : {b.get(), c.get()}) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(e->Grow());
    e->Finish(3);  // idle, its groups held (a prefix cache's, say)
  }
  ASSERT_TRUE(a->Grow());
  ASSERT_TRUE(a->Grow());
  EXPECT_TRUE(a->Grow()) << "an idle neighbour gives back its group above two";
  EXPECT_EQ(pool.used(), 8 * kGroup);
  EXPECT_EQ(b->account->held() + c->account->held(), 5 * kGroup);
}

TEST(KvPoolTest, JoinChecksFloorsCapsAndPromises) {
  KvPool pool("cpu", 1000);
  EXPECT_EQ(pool.Join("a", -1, 100).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Join("a", 200, 100).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Join("a", 1001, 1001).status().code(), absl::StatusCode::kResourceExhausted)
      << "a floor past this pool may fit another";
  {
    auto past = pool.Join("a", 0, 2000);
    ASSERT_TRUE(past.ok()) << past.status();
    EXPECT_EQ((*past)->promised(), 1000) << "a cap past the pool is the pool";
  }

  auto a = pool.Join("a", 300, 1000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->promised(), 1000) << "nobody else's floor is in the way yet";
  auto b = pool.Join("b", 0, 1000);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->promised(), 700) << "a's floor stays out of b's reach";
  // Any floor for c would leave a less than its promised 1000.
  absl::StatusOr<std::unique_ptr<KvPool::Account>> c = pool.Join("c", 100, 500);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("would break the 1000 bytes promised to model \"a\""));
  EXPECT_EQ(pool.Join("d", 400, 400).status().code(), absl::StatusCode::kResourceExhausted)
      << "floors of 700 in a pool of 1000 would break a's promise too";
  EXPECT_TRUE(pool.Join("c", 0, 500).ok());
  EXPECT_EQ(pool.floors(), 300);
}

// A configured model's floor, reserved at start-up, is out of every other
// account's promise whether or not the model has joined: whatever joins
// first, the model finds its floor (without the reservation, a first model
// with no cap takes the whole pool as its promise and the floor is refused).
TEST(KvPoolTest, AReservedFloorIsKeptForItsModelWhateverJoinsFirst) {
  KvPool plain("cpu", 1000);
  auto greedy = plain.Join("a", 0, 1000);
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ(plain.Join("b", 300, 1000).status().code(), absl::StatusCode::kResourceExhausted);

  KvPool pool("cpu", 1000);
  pool.Reserve("b", 300);
  auto a = pool.Join("a", 0, 1000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->promised(), 700) << "b's floor is out of a's reach before b comes";
  // A model loaded later (LoadModel) cannot take it either.
  absl::StatusOr<std::unique_ptr<KvPool::Account>> late = pool.Join("late", 800, 800);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("on cpu"));
  {
    auto b = pool.Join("b", 300, 1000);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->promised(), 1000) << "its own reservation is not in its way";
    EXPECT_EQ(pool.floors(), 300) << "counted once";
  }
  // b unloaded: its floor is still kept for its return.
  auto c = pool.Join("c", 0, 1000);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->promised(), 700);
  EXPECT_TRUE(pool.Join("b", 300, 1000).ok());
}

TEST(KvPoolTest, GrantsFreeMemoryUpToThePromise) {
  KvPool pool("cpu", 500);
  auto a = Join(pool, "a", 0, 300);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->Grow());
  EXPECT_FALSE(a->Grow()) << "its cap";
  EXPECT_EQ(pool.used(), 300);
  a->account->Release(100);
  EXPECT_EQ(a->account->held(), 200);
  EXPECT_EQ(pool.used(), 200);
  EXPECT_TRUE(a->reclaims.empty());
}

TEST(KvPoolTest, AnIdleEnginesFreeMemoryGoesWhereTheWorkIs) {
  KvPool pool("cpu", 500);
  auto a = Join(pool, "a", 0, 500), b = Join(pool, "b", 0, 500);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a->Grow()) << "a holds more than an even share";
  a->Finish(5);  // a goes idle; its memory stays backed (cached prefixes)
  b->oldest = 1;
  ASSERT_TRUE(b->Grow());
  ASSERT_EQ(a->reclaims.size(), 1u);
  EXPECT_EQ(a->reclaims[0].wanted, 100);
  EXPECT_EQ(a->account->held(), 400);
  EXPECT_EQ(b->account->held(), 100);
  EXPECT_EQ(pool.used(), 500);
}

TEST(KvPoolTest, BusyEnginesAboveTheirFloorsArePreemptedOnlyForAFloorOrOlderWork) {
  KvPool pool("cpu", 600);
  // Promises: a 400, b 300, c 300; each fits with the others at their floors.
  auto a = Join(pool, "a", 100, 400), b = Join(pool, "b", 0, 300), c = Join(pool, "c", 200, 300);
  ASSERT_TRUE(a && b && c);
  a->oldest = 1;  // a's work came first
  b->oldest = 2;
  c->oldest = 3;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(a->Grow());  // a's sequences use 400
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(b->Grow());  // b's use the other 200
  // b, above its floor of 0 and with younger work than a's, can only wait
  // for a to drain.
  EXPECT_FALSE(b->Grow());
  ASSERT_FALSE(a->reclaims.empty());
  EXPECT_FALSE(a->reclaims.back().could_preempt) << "a's work is older than b's";
  EXPECT_EQ(a->account->held(), 400);

  // c holds nothing, below its floor of 200: the engine most above its floor
  // is preempted for it, whatever the age of its work, but never below its
  // own floor.
  ASSERT_TRUE(c->Grow());
  EXPECT_TRUE(a->reclaims.back().could_preempt);
  EXPECT_EQ(a->account->held(), 300);
  ASSERT_TRUE(c->Grow());
  EXPECT_EQ(c->account->held(), 200);
  EXPECT_GE(a->account->held(), 100);
  EXPECT_GE(b->account->held(), 0);
  EXPECT_EQ(pool.used(), 600);
  const size_t a_before = a->reclaims.size(), b_before = b->reclaims.size();
  EXPECT_FALSE(c->Grow()) << "at its floor, with the youngest work: it may only wait";
  for (size_t i = a_before; i < a->reclaims.size(); ++i) EXPECT_FALSE(a->reclaims[i].could_preempt);
  for (size_t i = b_before; i < b->reclaims.size(); ++i) EXPECT_FALSE(b->reclaims[i].could_preempt);
}

// Wound-wait: two engines above their floors that each hold part of what
// their work needs. The one with the older work preempts the other; the
// younger never preempts the older, so they cannot wait for each other.
TEST(KvPoolTest, OlderWorkPreemptsYoungerAboveItsFloor) {
  KvPool pool("cpu", 400);
  auto a = Join(pool, "a", 0, 400), b = Join(pool, "b", 0, 400);
  ASSERT_TRUE(a && b);
  a->oldest = 7;
  b->oldest = 5;  // b's request came first
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(a->Grow());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(b->Grow());
  EXPECT_FALSE(a->Grow()) << "a's work is younger: it waits";
  ASSERT_FALSE(b->reclaims.empty());
  EXPECT_FALSE(b->reclaims.back().could_preempt);
  EXPECT_EQ(b->account->held(), 200);
  ASSERT_TRUE(b->Grow()) << "b's is older: a gives back a group in use";
  ASSERT_TRUE(b->Grow());
  ASSERT_FALSE(a->reclaims.empty());
  EXPECT_TRUE(a->reclaims.back().could_preempt);
  EXPECT_EQ(b->account->held(), 400);
  EXPECT_EQ(a->account->held(), 0);
  EXPECT_EQ(a->used, 0) << "a's sequences were preempted";
}

TEST(KvPoolTest, TheMostOverItsFloorGivesFirstAndNobodyGoesBelowItsFloor) {
  KvPool pool("cpu", 1000);
  auto a = Join(pool, "a", 100, 400), b = Join(pool, "b", 200, 500), c = Join(pool, "c", 400, 500);
  ASSERT_TRUE(a && b && c);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->Grow());  // 200 over its floor
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b->Grow());  // 300 over
  ASSERT_TRUE(c->Grow());
  ASSERT_TRUE(c->Grow());  // the last free 200
  EXPECT_TRUE(a->reclaims.empty() && b->reclaims.empty());
  ASSERT_TRUE(c->Grow());
  ASSERT_EQ(b->reclaims.size(), 1u) << "b, most over its floor, gave first";
  EXPECT_TRUE(a->reclaims.empty());
  ASSERT_TRUE(c->Grow());  // c reaches its floor
  EXPECT_GE(a->account->held(), 100);
  EXPECT_GE(b->account->held(), 200);
  EXPECT_EQ(c->account->held(), 400);
  EXPECT_EQ(pool.used(), 1000);
}

TEST(KvPoolTest, AnAccountWithoutAReclaimerIsNotReclaimedAndLeavingFreesItsMemory) {
  KvPool pool("cpu", 200);
  auto a = Join(pool, "a", 0, 200), b = Join(pool, "b", 0, 200);
  ASSERT_TRUE(a->Grow());
  ASSERT_TRUE(a->Grow());
  a->Finish(2);
  a->account->SetReclaimer(nullptr);  // its engine is on its way out
  EXPECT_FALSE(b->Grow());
  EXPECT_TRUE(a->reclaims.empty());
  a.reset();  // the account leaves: its memory is free again
  EXPECT_EQ(pool.used(), 0);
  EXPECT_TRUE(b->Grow());
}

// An unloaded model's engine lives on until its last call lets go. Its floor
// stops counting at once: the same name loaded again (or another model) may
// take it, and everything the old engine holds may be reclaimed. Before, the
// old account's floor and promise refused the reload until the old engine
// was gone.
TEST(KvPoolTest, ARetiredAccountsFloorGoesAtOnceAndAllItHoldsMayBeReclaimed) {
  KvPool pool("cpu", 10 * kGroup);
  auto old = Join(pool, "m", 6 * kGroup, 10 * kGroup);
  ASSERT_TRUE(old);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(old->Grow());
  EXPECT_EQ(pool.Join("m", 6 * kGroup, 10 * kGroup).status().code(),
            absl::StatusCode::kResourceExhausted)
      << "two floors of 600 in a pool of 1000";
  old->account->Retire();
  EXPECT_EQ(pool.floors(), 0);
  auto again = Join(pool, "m", 6 * kGroup, 10 * kGroup);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->account->promised(), 10 * kGroup) << "the old floor is in nobody's way";
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(again->Grow());
  // Past what is free: the old engine's groups (its requests were aborted;
  // its cache holds them) come back, though it is at its old floor.
  old->Finish(6);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(again->Grow()) << i;
  EXPECT_EQ(old->account->held(), 0);
  EXPECT_EQ(pool.used(), 10 * kGroup);
}

// Random grows, finishes and joins of engines with random floors and caps.
// After every call: the pool never passes its budget, the books add up, an
// engine below its floor always gets a group, so does the engine with the
// oldest work while within its promise, and a reclaim never leaves an engine
// below its floor (it held more before).
TEST(KvPoolTest, RandomizedSharingKeepsBudgetAndFloors) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const int64_t budget = kGroup * (4 + rng() % 12);
    KvPool pool("cpu", budget);
    std::vector<std::unique_ptr<FakeEngine>> engines;
    int64_t floors = 0;
    for (int i = 0; i < 4; ++i) {
      const int64_t floor = kGroup * static_cast<int64_t>(rng() % 3);
      const int64_t cap = std::min(budget, floor + kGroup * static_cast<int64_t>(1 + rng() % 8));
      absl::StatusOr<std::unique_ptr<KvPool::Account>> a =
          pool.Join(absl::StrCat("m", i), floor, cap);
      if (!a.ok()) continue;
      floors += floor;
      auto e = std::make_unique<FakeEngine>();
      e->account = *std::move(a);
      FakeEngine* raw = e.get();
      e->account->SetReclaimer([raw](int64_t w, int64_t m, runtime::RequestId wounder) {
        return raw->GiveBack(w, m, wounder);
      });
      engines.push_back(std::move(e));
    }
    ASSERT_LE(floors, budget);
    runtime::RequestId next_request = 1;
    for (int op = 0; op < 400; ++op) {
      FakeEngine& e = *engines[rng() % engines.size()];
      std::vector<int64_t> held_before;
      for (auto& x : engines) held_before.push_back(x->account->held());
      if (rng() % 3 == 0 && e.used > 0) {
        e.Finish(1 + static_cast<int64_t>(rng() % e.used));
        if (e.used == 0) e.oldest = runtime::kPreemptNever;  // its work is done
      } else {
        if (e.used == 0) e.oldest = next_request++;  // new work arrives
        const bool below_floor = e.account->held() + kGroup <= e.account->floor();
        const bool oldest_work = std::all_of(engines.begin(), engines.end(), [&](auto& x) {
          return x.get() == &e || x->oldest > e.oldest;
        });
        const bool within_promise = e.account->held() + kGroup <= e.account->promised();
        const bool granted = e.Grow();
        if (below_floor) {
          ASSERT_TRUE(granted) << "seed " << seed << " op " << op << ": below its floor";
        }
        if (oldest_work && within_promise) {
          ASSERT_TRUE(granted) << "seed " << seed << " op " << op << ": the oldest work waits";
        }
      }
      int64_t sum = 0;
      for (size_t i = 0; i < engines.size(); ++i) {
        const int64_t held = engines[i]->account->held();
        sum += held;
        if (held < held_before[i]) {
          ASSERT_GE(held, engines[i]->account->floor())
              << "seed " << seed << " op " << op << ": reclaimed below its floor";
        }
        ASSERT_EQ(held, (engines[i]->used + engines[i]->free) * kGroup);
      }
      ASSERT_EQ(sum, pool.used());
      ASSERT_LE(pool.used(), budget);
    }
  }
}

}  // namespace
}  // namespace cohost::scheduler
