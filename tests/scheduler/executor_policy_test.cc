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

TEST(PickNextEngineTest, Table) {
  struct Case {
    const char* what;
    std::vector<EngineCandidate> engines;
    std::optional<size_t> want;
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
       {Awaiting(milliseconds(5000), milliseconds(1000), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 50)},
       1},
      {"a missed deadline is still served before nothing",
       {Idle(), Awaiting(milliseconds(5000), milliseconds(1000))},
       1},
      {"missed first tokens share turns with decoders",
       {Awaiting(milliseconds(5000), milliseconds(1000), 8), Decoding(4)},
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
       {DecodingAt(milliseconds(1000), milliseconds(10), 0),
        Awaiting(milliseconds(10), milliseconds(1000), 9)},
       1},
      {"ties go to the engine stepped least recently",
       {Awaiting(milliseconds(100), milliseconds(1000), 6),
        Awaiting(milliseconds(100), milliseconds(1000), 2)},
       1},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PickNextEngine(c.engines, kNow), c.want) << c.what;
  }
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
