// TTFT prediction and its verdict, as tables; the book of predicted against
// actual TTFTs.

#include "scheduler/ttft_predictor.h"

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using std::chrono::milliseconds;

runtime::Clock::duration Ms(double ms) {
  return std::chrono::duration_cast<runtime::Clock::duration>(
      std::chrono::duration<double, std::milli>(ms));
}

// 10 ms a step plus 1 ms a token, 16 tokens a step.
PrefillQueue Queue(int64_t tokens) { return {tokens, runtime::StepCost{0.010, 0.001}, 16}; }

TEST(PredictTtftTest, ItsOwnBacklogAndPromptShareSteps) {
  struct Case {
    const char* what;
    PrefillQueue own;
    std::vector<PrefillQueue> others;
    int64_t prompt;
    runtime::Clock::duration to_ready;
    double want_ms;
  };
  const std::vector<Case> cases = {
      {"idle model, one step", Queue(0), {}, 10, {}, 10 + 10},
      {"idle model, two steps", Queue(0), {}, 20, {}, 2 * 10 + 20},
      {"behind its own backlog", Queue(12), {}, 10, {}, 2 * 10 + 22},
      {"behind another model's backlog", Queue(0), {Queue(32)}, 10, {}, (2 * 10 + 32) + (10 + 10)},
      {"behind two others",
       Queue(0),
       {Queue(16), Queue(1)},
       16,
       {},
       (10 + 16) + (10 + 1) + (10 + 16)},
      {"another's unmeasured backlog counts nothing",
       Queue(0),
       {PrefillQueue{1000, std::nullopt, 16}},
       10,
       {},
       20},
      {"waits for its load first", Queue(0), {}, 10, milliseconds(500), 500 + 20},
  };
  for (const Case& c : cases) {
    const std::optional<runtime::Clock::duration> got =
        PredictTtft(c.own, c.others, c.prompt, c.to_ready);
    ASSERT_TRUE(got) << c.what;
    const double got_ms = std::chrono::duration<double, std::milli>(*got).count();
    EXPECT_NEAR(got_ms, c.want_ms, 1e-6) << c.what;
  }
}

TEST(PredictTtftTest, NothingBeforeItsOwnCostIsMeasured) {
  EXPECT_FALSE(PredictTtft(PrefillQueue{0, std::nullopt, 16}, {Queue(100)}, 10));
}

TEST(JudgeTtftTest, RefusesPastTheMarginWithAPushbackToWhenItWouldFit) {
  struct Case {
    double predicted_ms;
    int64_t target_ms;
    int32_t margin_pct;
    bool admit;
    int64_t pushback_ms;
  };
  const std::vector<Case> cases = {
      {900, 1000, 0, true, 0},       {1000, 1000, 0, true, 0},  // on target
      {1001, 1000, 0, false, 100},                              // just over: the pushback floor
      {1400, 1000, 50, true, 0},                                // within a 50% margin
      {1500, 1000, 50, true, 0},                                // on the margin
      {1600, 1000, 50, false, 600},   // the queue must drain 600 ms for the target
      {4000, 1000, 0, false, 3000},   // pushback: the prediction less the target
      {1e8, 1000, 0, false, 60'000},  // never absurd: the ceiling
      {1200, 1000, -5, false, 200},   // a negative margin is no margin
  };
  for (const Case& c : cases) {
    const TtftVerdict v = JudgeTtft(Ms(c.predicted_ms), milliseconds(c.target_ms), c.margin_pct);
    EXPECT_EQ(v.admit, c.admit) << c.predicted_ms << " ms against " << c.target_ms;
    EXPECT_EQ(v.pushback.count(), c.pushback_ms) << c.predicted_ms << " ms against " << c.target_ms;
  }
}

TEST(TtftPredictionBookTest, SumsPredictedActualAndTheAbsoluteError) {
  TtftPredictionBook book;
  book.Record(Ms(100), Ms(150));
  book.Record(Ms(300), Ms(200));
  const TtftPredictionTotals t = book.totals();
  EXPECT_EQ(t.count, 2);
  EXPECT_NEAR(t.predicted_seconds, 0.4, 1e-9);
  EXPECT_NEAR(t.actual_seconds, 0.35, 1e-9);
  EXPECT_NEAR(t.abs_error_seconds, 0.05 + 0.1, 1e-9);
}

}  // namespace
}  // namespace cohost::scheduler
