// RouteTokens: the softmax's top k, ties, non-finite logits, and the rows
// grouped by expert that the step's products and MoeCombine read.
#include "runtime/model/moe_routing.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(RouteTokensTest, PicksTheMostProbableWithTheirSoftmaxProbabilities) {
  // Token 0: softmax of {0, ln 2, ln 4, ln 1} = {1, 2, 4, 1} / 8.
  const std::vector<float> logits = {0.f, std::log(2.f), std::log(4.f), 0.f};
  ExpertRoute r;
  RouteTokens(logits.data(), 1, 4, 2, /*normalize=*/false, &r);
  EXPECT_THAT(r.experts, ElementsAre(2, 1));
  EXPECT_THAT(r.weights, Pointwise(FloatNear(1e-6f), std::vector<float>{0.5f, 0.25f}));
  RouteTokens(logits.data(), 1, 4, 2, /*normalize=*/true, &r);
  EXPECT_THAT(r.experts, ElementsAre(2, 1));
  EXPECT_THAT(r.weights, Pointwise(FloatNear(1e-6f), std::vector<float>{4.f / 6, 2.f / 6}));
}

TEST(RouteTokensTest, TiesGoToTheLowerIndex) {
  const std::vector<float> logits = {1.f, 3.f, 3.f, 1.f, 3.f};
  ExpertRoute r;
  RouteTokens(logits.data(), 1, 5, 4, true, &r);
  EXPECT_THAT(r.experts, ElementsAre(1, 2, 4, 0));
}

TEST(RouteTokensTest, NonFiniteLogitsGiveFiniteWeights) {
  // NaN counts as -inf; a row of -inf shares its mass evenly; +inf takes it all.
  const std::vector<float> logits = {kNaN,  1.f,   -kInf, 0.f,    //
                                     -kInf, -kInf, kNaN,  -kInf,  //
                                     2.f,   kInf,  5.f,   kInf};
  ExpertRoute r;
  RouteTokens(logits.data(), 3, 4, 2, /*normalize=*/false, &r);
  EXPECT_THAT(r.experts, ElementsAre(1, 3, 0, 1, 1, 3));
  const float e = 1 / (1 + std::exp(1.f));
  EXPECT_THAT(r.weights,
              Pointwise(FloatNear(1e-6f), std::vector<float>{1 - e, e, 0.25f, 0.25f, 0.5f, 0.5f}));
  for (const float w : r.weights) EXPECT_TRUE(std::isfinite(w));
}

TEST(RouteTokensTest, RowsAreGroupedByExpertInTokenOrder) {
  // 3 tokens, 4 experts, 2 each: picks {3, 0}, {0, 2}, {3, 2}.
  const std::vector<float> logits = {2.f, -1.f, 0.f, 3.f,   //
                                     5.f, 0.f,  4.f, -2.f,  //
                                     0.f, -3.f, 1.f, 2.f};
  ExpertRoute r;
  RouteTokens(logits.data(), 3, 4, 2, true, &r);
  EXPECT_THAT(r.experts, ElementsAre(3, 0, 0, 2, 3, 2));
  EXPECT_THAT(r.starts, ElementsAre(0, 2, 2, 4, 6));
  EXPECT_EQ(r.rows(1), 0);
  // Expert 0: tokens 0, 1; expert 2: tokens 1, 2; expert 3: tokens 0, 2.
  EXPECT_THAT(r.token_of_row, ElementsAre(0, 1, 1, 2, 0, 2));
  // Each pair's row holds its token, in its expert's group.
  for (size_t p = 0; p < r.row_of_pair.size(); ++p) {
    const int32_t row = r.row_of_pair[p];
    EXPECT_EQ(r.token_of_row[row], static_cast<int32_t>(p / 2)) << p;
    EXPECT_GE(row, r.starts[r.experts[p]]) << p;
    EXPECT_LT(row, r.starts[r.experts[p] + 1]) << p;
  }
}

TEST(RouteTokensTest, ReusedRoutesStartOver) {
  const std::vector<float> big = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f};
  ExpertRoute r;
  RouteTokens(big.data(), 2, 4, 3, true, &r);
  RouteTokens(big.data(), 1, 8, 1, true, &r);
  EXPECT_THAT(r.experts, ElementsAre(7));
  EXPECT_THAT(r.weights, ElementsAre(1.f));
  EXPECT_EQ(r.starts.size(), 9u);
  EXPECT_THAT(r.token_of_row, ElementsAre(0));
  EXPECT_THAT(r.row_of_pair, ElementsAre(0));
}

}  // namespace
}  // namespace cohost::runtime
