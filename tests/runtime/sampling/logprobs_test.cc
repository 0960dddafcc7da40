// Log-probabilities against a hand-computed log-softmax: the chosen token, the
// top N in order (ties to the lower id), NaN and -inf logits, clamping.

#include "runtime/sampling/logprobs.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(LogprobsTest, MatchesTheLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, std::nanf(""), -kInf, 2.0f};
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(2.0) + std::exp(3.0));
  const TokenLogprobs l = ComputeLogprobs(logits, /*chosen=*/0, /*top_n=*/3);
  EXPECT_EQ(l.chosen.id, 0);
  EXPECT_NEAR(l.chosen.logprob, 1.0 - lse, 1e-6);
  ASSERT_EQ(l.top.size(), 3u);
  EXPECT_EQ(l.top[0].id, 2);
  EXPECT_NEAR(l.top[0].logprob, 3.0 - lse, 1e-6);
  EXPECT_EQ(l.top[1].id, 1);  // tied with 5: the lower id first
  EXPECT_EQ(l.top[2].id, 5);
  EXPECT_FLOAT_EQ(l.top[1].logprob, l.top[2].logprob);
  // The probabilities of all tokens sum to one.
  double total = 0;
  for (int32_t id = 0; id < 6; ++id)
    total += std::exp(ComputeLogprobs(logits, id, 0).chosen.logprob);
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(LogprobsTest, RuledOutTokensAreMinusInfinity) {
  const std::vector<float> logits = {0.0f, std::nanf(""), -kInf};
  EXPECT_EQ(ComputeLogprobs(logits, 1, 0).chosen.logprob, -kInf);
  EXPECT_EQ(ComputeLogprobs(logits, 2, 0).chosen.logprob, -kInf);
  EXPECT_FLOAT_EQ(ComputeLogprobs(logits, 0, 0).chosen.logprob, 0.0f);
  const std::vector<float> none = {-kInf, -kInf};
  EXPECT_EQ(ComputeLogprobs(none, 0, 1).chosen.logprob, -kInf);
}

TEST(LogprobsTest, TopNIsClampedToTheVocabulary) {
  const std::vector<float> logits = {0.5f, 0.25f};
  EXPECT_EQ(ComputeLogprobs(logits, 0, 20).top.size(), 2u);
  EXPECT_TRUE(ComputeLogprobs(logits, 0, 0).top.empty());
  EXPECT_TRUE(ComputeLogprobs({}, 0, 3).top.empty());
}

// A large vocabulary with many ties and NaNs: the top N are those of a full
// stable sort (higher logit first, ties to the lower id), for every N.
TEST(LogprobsTest, TopNMatchesAFullSortOnALargeVocabulary) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> level(0, 40);
  std::vector<float> logits(5000);
  for (float& x : logits) {
    const int v = level(rng);
    x = v == 0 ? std::nanf("") : static_cast<float>(v) * 0.25f;
  }
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](int32_t i) { return std::isnan(logits[i]) ? -kInf : logits[i]; };
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return key(a) > key(b); });
  for (const int32_t n : {1, 5, 20, 64}) {
    const TokenLogprobs l = ComputeLogprobs(logits, 0, n);
    ASSERT_EQ(l.top.size(), static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) EXPECT_EQ(l.top[i].id, order[i]) << "n " << n << " rank " << i;
  }
}

}  // namespace
}  // namespace cohost::runtime
