// StepCost arithmetic and the online fit of an engine's step times.

#include "runtime/batching/step_cost.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

TEST(StepCostTest, SecondsCountWholeStepsAndTokens) {
  const StepCost cost{/*fixed_seconds=*/0.5, /*seconds_per_token=*/0.01};
  EXPECT_DOUBLE_EQ(cost.Seconds(0, 16), 0);
  EXPECT_DOUBLE_EQ(cost.Seconds(1, 16), 0.5 + 0.01);
  EXPECT_DOUBLE_EQ(cost.Seconds(16, 16), 0.5 + 0.16);
  EXPECT_DOUBLE_EQ(cost.Seconds(17, 16), 2 * 0.5 + 0.17) << "a 17th token takes a second step";
  EXPECT_DOUBLE_EQ(cost.Seconds(10, 0), 10 * 0.5 + 0.1) << "a step budget of 0 is one token";
}

TEST(StepCostTest, TokensWithinATimeInvertTheLine) {
  // Binary fractions, so that the arithmetic is exact: 250 ms and 1/128 s a token.
  const StepCost cost{/*fixed_seconds=*/0.25, /*seconds_per_token=*/0.0078125};
  EXPECT_EQ(cost.TokensWithin(1.0, 16, 512), 96) << "(1000 - 250) ms at 7.8125 ms a token";
  EXPECT_DOUBLE_EQ(cost.Seconds(96, 512), 1.0);
  EXPECT_EQ(cost.TokensWithin(0.72265625, 16, 512), 60) << "60.5 rounds down: within the time";
  EXPECT_EQ(cost.TokensWithin(100, 16, 512), 512) << "never past the budget";
  EXPECT_EQ(cost.TokensWithin(0.125, 16, 512), 16) << "shorter than the fixed cost: the floor";
  EXPECT_EQ(cost.TokensWithin(1.0, 0, 0), 1) << "a step always takes a token";
  EXPECT_EQ(cost.TokensWithin(1.0, 900, 512), 512) << "a floor above the budget is the budget";
  const StepCost flat{0.05, 0};
  EXPECT_EQ(flat.TokensWithin(0.1, 16, 512), 512) << "tokens are free: the whole budget";
  EXPECT_EQ(flat.TokensWithin(0.01, 16, 512), 16);
}

TEST(StepCostFitTest, NothingUntilAStepDidPrefill) {
  StepCostFit fit;
  EXPECT_FALSE(fit.Estimate());
  for (int i = 0; i < 50; ++i) fit.Observe(4, 0.02);  // decodes only
  EXPECT_FALSE(fit.Estimate()) << "decode steps say nothing about a prompt's cost";
  fit.Observe(StepCostFit::kMinPrefillTokens, 0.05);
  EXPECT_TRUE(fit.Estimate());
}

TEST(StepCostFitTest, RecoversTheLineFromMixedSteps) {
  StepCostFit fit;
  for (int i = 0; i < 60; ++i) {
    const int64_t tokens = (i % 3 == 0) ? 512 : (i % 3 == 1 ? 3 : 130);
    fit.Observe(tokens, 0.02 + 0.001 * static_cast<double>(tokens));
  }
  const std::optional<StepCost> cost = fit.Estimate();
  ASSERT_TRUE(cost);
  EXPECT_NEAR(cost->fixed_seconds, 0.02, 1e-9);
  EXPECT_NEAR(cost->seconds_per_token, 0.001, 1e-12);
}

TEST(StepCostFitTest, EqualSizedStepsAreTakenAsProportional) {
  StepCostFit fit;
  for (int i = 0; i < 10; ++i) fit.Observe(512, 1.024);
  const std::optional<StepCost> cost = fit.Estimate();
  ASSERT_TRUE(cost);
  EXPECT_DOUBLE_EQ(cost->fixed_seconds, 0);
  EXPECT_NEAR(cost->seconds_per_token, 0.002, 1e-12);
  EXPECT_NEAR(cost->Seconds(512, 512), 1.024, 1e-9) << "exact at the size it saw";
}

TEST(StepCostFitTest, NeitherPartGoesNegative) {
  StepCostFit slower_when_small;  // noise can tilt the line either way
  for (int i = 0; i < 20; ++i) slower_when_small.Observe(i % 2 == 0 ? 40 : 400, i % 2 ? 0.1 : 0.2);
  std::optional<StepCost> cost = slower_when_small.Estimate();
  ASSERT_TRUE(cost);
  EXPECT_EQ(cost->seconds_per_token, 0);
  EXPECT_NEAR(cost->fixed_seconds, 0.15, 0.02);

  StepCostFit steep;  // a line through (40, 0.01) and (400, 1.0): negative intercept
  for (int i = 0; i < 20; ++i) steep.Observe(i % 2 == 0 ? 40 : 400, i % 2 ? 1.0 : 0.01);
  cost = steep.Estimate();
  ASSERT_TRUE(cost);
  EXPECT_EQ(cost->fixed_seconds, 0);
  EXPECT_GT(cost->seconds_per_token, 0);
}

TEST(StepCostFitTest, FollowsAChangeWithinAFewDozenSteps) {
  StepCostFit fit;
  for (int i = 0; i < 200; ++i) fit.Observe(i % 2 ? 64 : 256, 0.001 * (i % 2 ? 64 : 256));
  for (int i = 0; i < 60; ++i) fit.Observe(i % 2 ? 64 : 256, 0.004 * (i % 2 ? 64 : 256));
  const std::optional<StepCost> cost = fit.Estimate();
  ASSERT_TRUE(cost);
  EXPECT_NEAR(cost->Seconds(256, 512), 0.004 * 256, 0.1 * 0.004 * 256);
}

TEST(StepCostFitTest, IgnoresEmptyStepsAndBadReadings) {
  StepCostFit fit;
  fit.Observe(0, 1.0);
  fit.Observe(64, -1.0);
  EXPECT_FALSE(fit.Estimate());
}

}  // namespace
}  // namespace cohost::runtime
