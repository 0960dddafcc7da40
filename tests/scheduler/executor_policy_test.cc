// PickNextEngine, SliceThisStep, SliceTokens and StepTokenCap as tables:
// which engine a device executor steps next, whether its step is capped to a
// time slice, and how many new tokens that step may take.

#include "scheduler/executor_policy.h"

#include <chrono>
#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using std::chrono::milliseconds;

const Clock::time_point kNow = Clock::time_point{} + std::chrono::hours(10);

EngineCandidate Idle() { return {}; }
EngineCandidate Decoding(int64_t last_stepped) {
  EngineCandidate c;
  c.has_work = true;
  c.last_stepped = last_stepped;
  return c;
}
// Decoding, its last step ended `ago`, its model's TPOT target `tpot`.
EngineCandidate DecodingAt(milliseconds ago, milliseconds tpot, int64_t last_stepped = 0) {
  EngineCandidate c = Decoding(last_stepped);
  c.decoding = true;
  c.last_step_end = kNow - ago;
  c.tpot_target = tpot;
  return c;
}
// A request without its first token, submitted `age` ago, TTFT target `target`.
EngineCandidate Awaiting(milliseconds age, milliseconds target, int64_t last_stepped = 0) {
  EngineCandidate c = Decoding(last_stepped);
  c.oldest_awaiting_first = kNow - age;
  c.ttft_target = target;
  return c;
}

// `c`, its last step ended `ago`.
EngineCandidate Stepped(EngineCandidate c, milliseconds ago) {
  c.last_step_end = kNow - ago;
  return c;
}

// `c` with a request awaiting its first token, submitted `age` ago (TTFT
// target as by default).
EngineCandidate With(EngineCandidate c, milliseconds age) {
  c.oldest_awaiting_first = kNow - age;
  return c;
}

TEST(PickNextEngineTest, Table) {
  struct Case {
    const char* what;
    std::vector<EngineCandidate> engines;
    std::optional<size_t> want;
    bool after_promotion = false;  // the device's last pick was promoted
    bool want_promoted = false;
  };
  const Case cases[] = {
      {"nothing attached", {}, std::nullopt},
      {"nobody has work", {Idle(), Idle()}, std::nullopt},
      {"the only one with work", {Idle(), Decoding(5)}, 1},
      {"decoders take turns: least recently stepped first",
       {Decoding(7), Decoding(3), Decoding(9)},
       1},
      {"a first token beats decoding",
       {Decoding(0), Awaiting(milliseconds(10), milliseconds(1000), 99)},
       1},
      {"earliest TTFT deadline first (older request, same target)",
       {Awaiting(milliseconds(100), milliseconds(1000)),
        Awaiting(milliseconds(300), milliseconds(1000))},
       1},
      {"earliest deadline, not oldest submit: a tighter target wins",
       {Awaiting(milliseconds(300), milliseconds(1000)),
        Awaiting(milliseconds(10), milliseconds(200))},
       1},
      {"a deadline already missed ranks behind one that can be met",
       {Awaiting(milliseconds(1500), milliseconds(1000), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 50)},
       1},
      {"a missed deadline is still served before nothing",
       {Idle(), Awaiting(milliseconds(5000), milliseconds(1000))},
       1},
      {"missed first tokens share turns with decoders",
       {Awaiting(milliseconds(1500), milliseconds(1000), 8), Decoding(4)},
       1},
      {"a deadline exactly now can still be met",
       {Decoding(0), Awaiting(milliseconds(1000), milliseconds(1000), 9)},
       1},
      {"decoders: the earliest next-token deadline, a tight TPOT target first",
       {DecodingAt(milliseconds(50), milliseconds(200), 1),
        DecodingAt(milliseconds(10), milliseconds(50), 9)},
       1},
      {"decoders with equal targets: the one whose step ended longer ago",
       {DecodingAt(milliseconds(20), milliseconds(100), 1),
        DecodingAt(milliseconds(100), milliseconds(100), 9)},
       1},
      {"a decoder never stepped goes before one with a due token",
       {DecodingAt(milliseconds(1000), milliseconds(0), 0), Decoding(5)},
       1},
      {"an on-time first token still beats an overdue decode",
       {DecodingAt(milliseconds(50), milliseconds(10), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1},
      {"but not a decode late by more than four TPOT targets: a backlog of first tokens "
       "cannot starve another model's streams",
       {DecodingAt(milliseconds(51), milliseconds(10), 9),
        Awaiting(milliseconds(10), milliseconds(1000), 0)},
       0,
       false,
       true},
      {"after that promotion the first token goes next, however late the decode: the two "
       "alternate, so neither starves",
       {DecodingAt(milliseconds(5000), milliseconds(10), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1,
       true,
       false},
      {"the first token then takes its turn over several starved decodes too",
       {DecodingAt(milliseconds(5000), milliseconds(10), 0),
        DecodingAt(milliseconds(900), milliseconds(10), 1),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       2,
       true,
       false},
      {"starved decodes among themselves: the latest next token first",
       {DecodingAt(milliseconds(900), milliseconds(10), 0),
        DecodingAt(milliseconds(5000), milliseconds(10), 1),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1,
       false,
       true},
      {"a starved decode with no on-time first token waiting is no promotion",
       {DecodingAt(milliseconds(5000), milliseconds(10), 0),
        Awaiting(milliseconds(1500), milliseconds(1000), 9)},
       0},
      {"nor is one whose own engine holds the only on-time first token",
       {With(DecodingAt(milliseconds(5000), milliseconds(10), 0), milliseconds(10)), Decoding(1)},
       0},
      {"after a promotion with no first token waiting, decodes go by deadline as ever",
       {DecodingAt(milliseconds(900), milliseconds(10), 0),
        DecodingAt(milliseconds(5000), milliseconds(10), 1)},
       1,
       true,
       false},
      {"a late first token with no step for more than four TPOT targets past its deadline "
       "is starved too: another model's on-time first tokens cannot strand it",
       {Awaiting(milliseconds(2100), milliseconds(1000), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       0,
       false,
       true},
      {"not while late by less (the default TPOT target is 200 ms)",
       {Awaiting(milliseconds(1900), milliseconds(1000), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1},
      {"nor while its engine was stepped within that time (its prompt advances in slices)",
       {Stepped(Awaiting(milliseconds(5000), milliseconds(1000), 0), milliseconds(900)),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1},
      {"but once its last step is that far behind",
       {Stepped(Awaiting(milliseconds(5000), milliseconds(1000), 0), milliseconds(1100)),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       0,
       false,
       true},
      {"and it alternates with the on-time first tokens as a starved decode does",
       {Awaiting(milliseconds(5000), milliseconds(1000), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1,
       true,
       false},
      {"among starved models, the step due earliest first: a late prompt's wait counts from "
       "its deadline, not from its engine's last step long before",
       {Stepped(Awaiting(milliseconds(2200), milliseconds(1000), 0), milliseconds(10000)),
        DecodingAt(milliseconds(1500), milliseconds(200), 1)},
       1},
      {"ties go to the engine stepped least recently",
       {Awaiting(milliseconds(100), milliseconds(1000), 6),
        Awaiting(milliseconds(100), milliseconds(1000), 2)},
       1},
  };
  for (const Case& c : cases) {
    const std::optional<EnginePick> got = PickNextEngine(c.engines, kNow, c.after_promotion);
    ASSERT_EQ(got.has_value(), c.want.has_value()) << c.what;
    if (!got) continue;
    EXPECT_EQ(got->index, *c.want) << c.what;
    EXPECT_EQ(got->promoted, c.want_promoted) << c.what;
  }
}

// Picks in a row as a device executor makes them, each step taking 30 ms:
// three decoding models whose steps take six of their 5 ms TPOT targets (so
// some decode is always starved) and one model with a steady backlog of
// on-time first tokens. Neither side starves: they alternate.
TEST(PickNextEngineTest, StarvedDecodesAndFirstTokensAlternate) {
  constexpr milliseconds kStep(30), kTpot(5);
  std::vector<EngineCandidate> engines = {
      DecodingAt(kStep, kTpot, 1), DecodingAt(2 * kStep, kTpot, 2), DecodingAt(3 * kStep, kTpot, 3),
      Awaiting(milliseconds(0), milliseconds(10000), 4)};
  Clock::time_point now = kNow;
  bool after_promotion = false;
  std::vector<size_t> picks;
  for (int64_t round = 5; round < 5 + 12; ++round) {
    const std::optional<EnginePick> got = PickNextEngine(engines, now, after_promotion);
    ASSERT_TRUE(got.has_value());
    EXPECT_FALSE(after_promotion && got->promoted) << "two promotions in a row";
    after_promotion = got->promoted;
    picks.push_back(got->index);
    now += kStep;
    engines[got->index].last_step_end = now;
    engines[got->index].last_stepped = round;
    engines[3].oldest_awaiting_first = now;  // the next first token of the backlog
  }
  // D F D F ...: the first tokens get every other step, and the decodes share
  // the rest in turn.
  const std::vector<size_t> want = {2, 3, 1, 3, 0, 3, 2, 3, 1, 3, 0, 3};
  EXPECT_EQ(picks, want);
}

TEST(SliceThisStepTest, Table) {
  const EngineCandidate on_time = Awaiting(milliseconds(10), milliseconds(1000));
  const EngineCandidate missed = Awaiting(milliseconds(5000), milliseconds(1000));
  struct Case {
    const char* what;
    std::vector<EngineCandidate> engines;
    size_t pick;
    bool want;
  };
  const Case cases[] = {
      {"an on-time first token, nobody else's due: whole", {on_time, Decoding(1)}, 0, false},
      {"alone among idle engines: whole", {Idle(), on_time}, 1, false},
      {"another on-time first token waits: sliced", {on_time, on_time}, 0, true},
      {"decoding, while another's first token waits: sliced", {Decoding(1), on_time}, 0, true},
      {"decoding among decoders: sliced, they take turns", {Decoding(1), Decoding(2)}, 0, true},
      {"missed first tokens (a flood): sliced", {missed, Decoding(2)}, 0, true},
      {"an on-time first token beside a flood: whole", {missed, on_time}, 1, false},
      {"a pick out of range: sliced", {on_time}, 3, true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SliceThisStep(c.engines, c.pick, kNow), c.want) << c.what;
  }
}

TEST(SliceTokensTest, Table) {
  struct Case {
    double rate;
    milliseconds slice;
    int32_t want;
  };
  const Case cases[] = {
      {0, milliseconds(250), 64},         // not measured yet
      {-1, milliseconds(250), 64},        // nonsense rate: as unmeasured
      {180, milliseconds(250), 45},       // a CPU prefill rate
      {20, milliseconds(250), 16},        // never below the floor
      {1e7, milliseconds(250), 2500000},  // a GPU: effectively no cap
      {1e12, milliseconds(100000), INT32_MAX},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SliceTokens(c.rate, c.slice, /*min_tokens=*/16, /*unmeasured_tokens=*/64), c.want)
        << c.rate << " tok/s";
  }
  EXPECT_EQ(SliceTokens(0, milliseconds(250), 0, 0), 1) << "a step may always take a token";
}

TEST(StepTokenCapTest, Table) {
  // At 1000 tokens a second: a 100 ms slice is 100 tokens, a 40 ms TPOT 40.
  constexpr double kRate = 1000;
  StepSlicing slicing;
  slicing.slice = milliseconds(100);
  auto with_streams = [](EngineCandidate c, milliseconds tpot) {
    c.decoding = true;
    c.tpot_target = tpot;
    return c;
  };
  const EngineCandidate on_time = Awaiting(milliseconds(10), milliseconds(1000));
  const EngineCandidate prefilling = Decoding(1);  // work, no stream past its first token
  struct Case {
    const char* what;
    std::vector<EngineCandidate> engines;
    size_t pick;
    int32_t want;
  };
  const Case cases[] = {
      {"alone, prefill only: no cap", {prefilling}, 0, 0},
      {"alone with streams decoding: their TPOT target",
       {with_streams(prefilling, milliseconds(40))},
       0,
       40},
      {"alone, a loose TPOT target: a larger step",
       {with_streams(prefilling, milliseconds(400))},
       0,
       400},
      {"shared, sliced, no streams: the slice", {prefilling, on_time}, 0, 100},
      {"shared, sliced, streams: the smaller",
       {with_streams(prefilling, milliseconds(40)), on_time},
       0,
       40},
      {"shared, sliced, a loose TPOT: the slice",
       {with_streams(prefilling, milliseconds(400)), on_time},
       0,
       100},
      {"a whole step for an on-time first token still keeps its streams' TPOT",
       {prefilling, with_streams(on_time, milliseconds(40))},
       1,
       40},
      {"a pick out of range: no cap", {prefilling}, 2, 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(StepTokenCap(c.engines, c.pick, kNow, slicing, kRate), c.want) << c.what;
  }
  slicing.slice = milliseconds(0);
  EXPECT_EQ(StepTokenCap({prefilling, on_time}, 0, kNow, slicing, kRate), 0)
      << "a slice of 0 never slices";
  EXPECT_EQ(StepTokenCap({with_streams(prefilling, milliseconds(40))}, 0, kNow, slicing, 0), 64)
      << "an unmeasured rate: the unmeasured step";
}

}  // namespace
}  // namespace cohost::scheduler
