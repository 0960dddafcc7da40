#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(int n, uint32_t seed, float scale = 3.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> logits(n);
  for (float& l : logits) l = dist(gen);
  return logits;
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

int32_t SampleOnce(Sampler& sampler, std::vector<float> logits) {
  return sampler.Sample(absl::MakeSpan(logits), {}, 0);
}

// Draws n tokens from the same logits; returns counts per id.
std::vector<int> Histogram(const SamplingParams& params, const std::vector<float>& logits, int n,
                           uint64_t seed = 1234) {
  Sampler sampler(params, seed);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[SampleOnce(sampler, logits)];
  return counts;
}

// Each count within 5 binomial standard deviations of n * p (p renormalized).
void ExpectFrequencies(const std::vector<int>& counts, std::vector<double> p, int n) {
  const double sum = std::accumulate(p.begin(), p.end(), 0.0);
  ASSERT_EQ(counts.size(), p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i] / sum;
    const double sd = std::sqrt(n * pi * (1 - pi));
    EXPECT_NEAR(counts[i], n * pi, 5 * sd + 1e-9) << "id " << i << " p " << pi;
  }
}

std::vector<float> LogOf(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(x > 0 ? static_cast<float>(std::log(x)) : -kInf);
  return l;
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.f;
  return p;
}

TEST(SamplerTest, GreedyPicksArgmax) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = RandomLogits(32000, seed);
    Sampler sampler(Greedy(), 1);
    EXPECT_EQ(SampleOnce(sampler, logits), Argmax(logits));
  }
}

TEST(SamplerTest, GreedyTiesGoToLowestId) {
  Sampler sampler(Greedy(), 1);
  EXPECT_EQ(SampleOnce(sampler, {1.f, 5.f, 2.f, 5.f, 5.f}), 1);
  EXPECT_EQ(SampleOnce(sampler, {-kInf, -kInf, 0.f, 0.f}), 2);
}

TEST(SamplerTest, TopK1EqualsGreedyAtAnyTemperature) {
  for (float t : {0.01f, 0.5f, 1.f, 7.f, 100.f}) {
    SamplingParams p;
    p.temperature = t;
    p.top_k = 1;
    Sampler sampler(p, 99);
    for (uint32_t seed = 0; seed < 10; ++seed) {
      std::vector<float> logits = RandomLogits(5000, seed);
      logits[17] = 100.f;
      EXPECT_EQ(SampleOnce(sampler, logits), 17) << t;
      logits[17] = 0.f;
      logits[4321] = 100.f;
      EXPECT_EQ(SampleOnce(sampler, logits), 4321) << t;
    }
  }
}

TEST(SamplerTest, TinyTopPEqualsGreedy) {
  SamplingParams p;
  p.temperature = 5.f;  // flat enough that any leak past the top token would show
  p.top_p = 1e-6f;
  Sampler sampler(p, 3);
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const std::vector<float> logits = RandomLogits(10000, seed);
    EXPECT_EQ(SampleOnce(sampler, logits), Argmax(logits));
  }
}

TEST(SamplerTest, MinP1EqualsGreedy) {
  SamplingParams p;
  p.temperature = 5.f;
  p.min_p = 1.f;
  Sampler sampler(p, 3);
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const std::vector<float> logits = RandomLogits(10000, seed);
    EXPECT_EQ(SampleOnce(sampler, logits), Argmax(logits));
  }
}

TEST(SamplerTest, TemperatureOneMatchesSoftmax) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  constexpr int kDraws = 20000;
  ExpectFrequencies(Histogram(SamplingParams(), LogOf(probs), kDraws), probs, kDraws);
}

TEST(SamplerTest, TemperatureFlattensAndSharpens) {
  const std::vector<double> probs = {0.05, 0.15, 0.3, 0.5};
  constexpr int kDraws = 20000;
  for (double t : {0.5, 2.0, 10.0}) {
    SamplingParams p;
    p.temperature = static_cast<float>(t);
    std::vector<double> expected;
    for (double x : probs) expected.push_back(std::pow(x, 1.0 / t));  // softmax(log p / t)
    ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), expected, kDraws);
  }
}

TEST(SamplerTest, TopKKeepsTheKBestRenormalized) {
  const std::vector<double> probs = {0.1, 0.4, 0.05, 0.3, 0.15};
  SamplingParams p;
  p.top_k = 3;
  constexpr int kDraws = 20000;
  ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), {0, 0.4, 0, 0.3, 0.15}, kDraws);
}

TEST(SamplerTest, TopPKeepsSmallestSetReachingP) {
  const std::vector<double> probs = {0.15, 0.05, 0.5, 0.3};
  SamplingParams p;
  p.top_p = 0.75f;  // 0.5 < 0.75, 0.5 + 0.3 >= 0.75
  constexpr int kDraws = 20000;
  ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), {0, 0, 0.5, 0.3}, kDraws);
  p.top_p = 0.9f;  // 0.8 < 0.9: 0.15 joins
  ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), {0.15, 0, 0.5, 0.3}, kDraws);
}

// Ties at a cut all stay (Backend::SampleRows' rule, as vLLM's and
// transformers' masks keep them): top-k 1 over two equal maxima keeps both,
// and a flat distribution's nucleus is all of it.
TEST(SamplerTest, TiesAtACutAllStay) {
  SamplingParams p;
  p.top_k = 1;
  std::vector<float> logits = RandomLogits(100, 3);
  logits[17] = logits[71] = 50.f;
  std::vector<double> want(100, 0.0);
  want[17] = want[71] = 0.5;
  constexpr int kDraws = 4000;
  ExpectFrequencies(Histogram(p, logits, kDraws), want, kDraws);
  SamplingParams flat;
  flat.top_p = 0.25f;
  const std::vector<int> counts = Histogram(flat, std::vector<float>(40, 0.5f), kDraws);
  ExpectFrequencies(counts, std::vector<double>(40, 1.0), kDraws);
}

// The documented rule (kernels/sample_spec.h, Backend::SampleRows) written
// the slow, obvious way: weights, then top-k, top-p and min-p as thresholds
// on them (ties at a cut all stay), the draw in id order with u from
// mt19937_64 in float.
std::vector<int32_t> ReferenceDraws(const std::vector<float>& logits, const SamplingParams& p,
                                    int n) {
  const float max = *std::max_element(logits.begin(), logits.end());
  const int vocab = static_cast<int>(logits.size());
  std::vector<float> w(vocab);
  for (int i = 0; i < vocab; ++i) {
    const float z = (logits[i] - max) * (1.f / p.temperature);
    w[i] = z >= -104.f ? std::exp(z) : 0.f;
  }
  std::vector<float> desc = w;
  std::sort(desc.begin(), desc.end(), std::greater<float>());
  float cut = 0.f;
  if (p.top_k > 0 && p.top_k < vocab) cut = desc[p.top_k - 1];
  if (p.top_p < 1.f) {
    double total = 0;
    for (float v : desc) total += v > 0.f && v >= cut ? v : 0.0;
    // The largest weight whose "at least this" mass reaches top_p of it.
    double mass = 0;
    for (size_t i = 0; i < desc.size(); ++i) {
      if (!(desc[i] > 0.f && desc[i] >= cut)) break;
      mass += desc[i];
      const bool run_ends = i + 1 == desc.size() || desc[i + 1] != desc[i];
      if (run_ends && mass >= static_cast<double>(p.top_p) * total) {
        cut = std::max(cut, desc[i]);
        break;
      }
    }
  }
  cut = std::max(cut, p.min_p);  // the max has weight exp(0) = 1
  double kept_total = 0;
  for (float v : w) kept_total += v > 0.f && v >= cut ? v : 0.0;
  std::mt19937_64 rng(*p.seed);
  std::vector<int32_t> out;
  for (int d = 0; d < n; ++d) {
    const float u =
        std::min(static_cast<float>(static_cast<double>(rng() >> 11) * 0x1.0p-53), 0x1.fffffep-1f);
    const double target = static_cast<double>(u) * kept_total;
    double c = 0;
    int32_t chosen = -1;
    for (int i = 0; i < vocab && chosen < 0; ++i) {
      if (!(w[i] > 0.f && w[i] >= cut)) continue;
      c += w[i];
      if (target < c) chosen = i;
    }
    out.push_back(chosen);
  }
  return out;
}

TEST(SamplerTest, FiltersMatchReferenceExactly) {
  // Many shapes: sizes around the selection's small-range cutoff and large ones,
  // quantized logits (many ties, which stay together at every cut), peaked and
  // flat distributions, top-k through the heap (small k) and nth_element (large k).
  std::mt19937 gen(7);
  for (int trial = 0; trial < 240; ++trial) {
    const int vocab = std::vector<int>{3, 16, 17, 40, 300, 3000}[trial % 6];
    std::vector<float> logits = RandomLogits(vocab, trial, (trial % 3 == 0) ? 0.3f : 3.f);
    if (trial % 2 == 0) {
      for (float& l : logits) l = std::round(l * 2.f) / 2.f;
    }
    SamplingParams p;
    p.temperature = std::uniform_real_distribution<float>(0.3f, 2.f)(gen);
    p.top_p = (trial % 5 == 4) ? 1.f : std::uniform_real_distribution<float>(0.05f, 0.99f)(gen);
    p.min_p = (trial % 4 == 1) ? 0.02f : 0.f;
    p.top_k = std::vector<int>{0, 0, 2, 10, 1500}[(trial / 7) % 5];
    p.seed = trial;
    Sampler sampler(p, 0);
    std::vector<int32_t> got;
    for (int d = 0; d < 30; ++d) got.push_back(SampleOnce(sampler, logits));
    EXPECT_EQ(got, ReferenceDraws(logits, p, 30))
        << "trial " << trial << " vocab " << vocab << " top_k " << p.top_k << " top_p " << p.top_p
        << " min_p " << p.min_p;
  }
}

// Top-p at a large vocabulary, from a cut that keeps one token to one that
// keeps nearly all: the reference's draws. Near-flat logits (the cut's weight
// bucket holds thousands of candidates, and, rounded, ties) and peaked ones
// (a few tokens far above the rest, as a language model's), which the
// sampler selects from in different ways.
TEST(SamplerTest, TopPOverALargeVocabularyMatchesTheReference) {
  for (const float top_p : {1e-6f, 0.5f, 0.9f, 0.9999f}) {
    for (const int shape : {0, 1, 2}) {  // flat, flat and rounded, peaked
      std::vector<float> logits = RandomLogits(151936, 11, 0.05f);
      if (shape == 1) {
        for (float& l : logits) l = std::round(l * 64.f) / 64.f;
      }
      for (int i = 0; shape == 2 && i < 8; ++i) logits[static_cast<size_t>(i) * 9973] += 12.f + i;
      SamplingParams p;
      p.temperature = 0.8f;
      p.top_p = top_p;
      p.seed = 5;
      Sampler sampler(p, 0);
      std::vector<int32_t> got;
      for (int d = 0; d < 8; ++d) got.push_back(SampleOnce(sampler, logits));
      EXPECT_EQ(got, ReferenceDraws(logits, p, 8)) << "top_p " << top_p << " shape " << shape;
    }
  }
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  SamplingParams p;
  p.min_p = 0.2f;  // threshold 0.1: drops only the 0.05 token
  constexpr int kDraws = 20000;
  ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), {0.5, 0.3, 0.15, 0}, kDraws);
}

TEST(SamplerTest, CombinedFiltersApplyInOrder) {
  // top_k 3 -> {0.4, 0.3, 0.2}; top_p 0.6 of that (renormalized 4/9, 3/9, 2/9)
  // keeps {0.4, 0.3}; min_p 0.8 then drops 0.3 (< 0.8 * 0.4).
  const std::vector<double> probs = {0.3, 0.1, 0.4, 0.2};
  SamplingParams p;
  p.top_k = 3;
  p.top_p = 0.6f;
  constexpr int kDraws = 5000;
  ExpectFrequencies(Histogram(p, LogOf(probs), kDraws), {0.3, 0, 0.4, 0}, kDraws);
  p.min_p = 0.8f;
  const std::vector<int> counts = Histogram(p, LogOf(probs), kDraws);
  EXPECT_EQ(counts[2], kDraws);
}

TEST(SamplerTest, PenaltiesChangeLogitsExactly) {
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler sampler(p, 1);
  // prompt {1, 2, 2, 4}, generated {2, 3, 3, 3}; -1 and 99 are out of range and ignored.
  const std::vector<int32_t> history = {1, 2, 2, 4, 2, 3, 3, 3, -1, 99};
  std::vector<float> logits = {1.f, 3.f, -1.f, 2.f, -0.5f, 4.f};
  for (int round = 0; round < 2; ++round) {  // scratch buffers must be clean again
    std::vector<float> l = logits;
    const int32_t chosen = sampler.Sample(absl::MakeSpan(l), history, 4);
    EXPECT_FLOAT_EQ(l[0], 1.f);                     // never seen
    EXPECT_FLOAT_EQ(l[1], 1.5f);                    // prompt only: 3 / 2
    EXPECT_FLOAT_EQ(l[2], -2.f - 0.5f - 0.25f);     // -1 * 2, then generated once
    EXPECT_FLOAT_EQ(l[3], 1.f - 0.5f - 3 * 0.25f);  // 2 / 2, then generated 3 times
    EXPECT_FLOAT_EQ(l[4], -1.f);                    // prompt only: -0.5 * 2
    EXPECT_FLOAT_EQ(l[5], 4.f);                     // never seen
    EXPECT_EQ(chosen, 5);
  }
}

// A logit bias is added to the raw logit, before the penalties (as vLLM):
// a token both biased and repeated is (l + bias) / repetition.
TEST(SamplerTest, LogitBiasComesBeforeThePenalties) {
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.f;
  p.presence_penalty = 0.5f;
  p.logit_bias = {{0, 3.f}, {2, -100.f}, {4, 0.f}, {5, 1.5f}};
  Sampler sampler(p, 1);
  ASSERT_TRUE(sampler.HasPenalties());
  const std::vector<int32_t> history = {0, 1, 5};  // prompt {0, 1}, generated {5}
  for (int round = 0; round < 2; ++round) {        // scratch buffers must be clean again
    std::vector<float> l = {1.f, 3.f, 9.f, 2.5f, -0.5f, 0.5f};
    const int32_t chosen = sampler.Sample(absl::MakeSpan(l), history, 2);
    EXPECT_FLOAT_EQ(l[0], (1.f + 3.f) / 2.f);           // biased, then the prompt's repetition
    EXPECT_FLOAT_EQ(l[1], 3.f / 2.f);                   // repetition only
    EXPECT_FLOAT_EQ(l[2], -91.f);                       // biased only: ruled out in practice
    EXPECT_FLOAT_EQ(l[3], 2.5f);                        // nothing
    EXPECT_FLOAT_EQ(l[4], -0.5f);                       // a bias of 0
    EXPECT_FLOAT_EQ(l[5], (0.5f + 1.5f) / 2.f - 0.5f);  // biased, repeated, generated
    EXPECT_EQ(chosen, 3) << "the bias took 2, the argmax of the raw logits";
  }
  // The same terms for the device (kernels::PenaltyTerm), each token once.
  std::vector<kernels::PenaltyTerm> terms;
  sampler.ForEachPenalty(history, 2, 6, [&](const kernels::PenaltyTerm& t) { terms.push_back(t); });
  std::sort(terms.begin(), terms.end(),
            [](const auto& a, const auto& b) { return a.token < b.token; });
  ASSERT_EQ(terms.size(), 4u);
  const float raw[] = {1.f, 3.f, 9.f, 2.5f, -0.5f, 0.5f};
  const float want[] = {2.f, 1.5f, -91.f, 2.5f, -0.5f, 0.5f};
  for (const kernels::PenaltyTerm& t : terms) {
    EXPECT_FLOAT_EQ(kernels::PenalizedLogit(raw[t.token], t), want[t.token]) << t.token;
  }
  // Params that skipped Validate: unsorted, a token twice, a bias out of
  // range. Each token gets one term (its first bias), the bad bias none.
  SamplingParams messy = Greedy();
  messy.logit_bias = {{4, 1.f}, {1, 2.f}, {4, 3.f}, {2, 500.f}};
  Sampler unchecked(messy, 1);
  std::vector<kernels::PenaltyTerm> once;
  unchecked.ForEachPenalty({1, 4}, 2, 6, [&](const kernels::PenaltyTerm& t) { once.push_back(t); });
  ASSERT_EQ(once.size(), 2u);
  EXPECT_EQ(once[0].token, 1);
  EXPECT_FLOAT_EQ(once[0].add, 2.f);
  EXPECT_EQ(once[1].token, 4);
  EXPECT_FLOAT_EQ(once[1].add, 1.f);
  // Only a bias, no history: the biased tokens alone.
  SamplingParams only = Greedy();
  only.logit_bias = {{1, -100.f}};
  Sampler biased(only, 1);
  std::vector<float> l = {1.f, 3.f, 2.f};
  EXPECT_EQ(biased.Sample(absl::MakeSpan(l), {}, 0), 2);
}

TEST(SamplerTest, RepetitionPenaltyCanChangeTheGreedyChoice) {
  SamplingParams p = Greedy();
  p.repetition_penalty = 1.5f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {2.f, 2.9f, 1.f};
  const std::vector<int32_t> history = {1};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), history, 1), 0);
  EXPECT_FLOAT_EQ(logits[1], 2.9f / 1.5f);
}

TEST(SamplerTest, PresenceAndFrequencyIgnorePrompt) {
  SamplingParams p = Greedy();
  p.presence_penalty = 2.f;
  p.frequency_penalty = -1.f;  // negative values encourage repetition
  Sampler sampler(p, 1);
  std::vector<float> logits = {0.f, 0.f, 0.f};
  const std::vector<int32_t> history = {0, 0, 1, 1};
  sampler.Sample(absl::MakeSpan(logits), history, 3);  // generated = {1}
  EXPECT_FLOAT_EQ(logits[0], 0.f);
  EXPECT_FLOAT_EQ(logits[1], -2.f + 1.f);
  EXPECT_FLOAT_EQ(logits[2], 0.f);
}

TEST(SamplerTest, DefaultParamsLeaveLogitsUnchanged) {
  Sampler sampler(SamplingParams(), 1);
  const std::vector<float> original = RandomLogits(100, 5);
  std::vector<float> logits = original;
  const std::vector<int32_t> history = {1, 2, 3, 3, 50};
  sampler.Sample(absl::MakeSpan(logits), history, 2);
  EXPECT_EQ(logits, original);
}

std::vector<int32_t> Sequence(const SamplingParams& p, uint64_t default_seed, int n) {
  Sampler sampler(p, default_seed);
  std::vector<int32_t> out;
  std::vector<int32_t> history = {7, 8};
  for (int i = 0; i < n; ++i) {
    std::vector<float> logits = RandomLogits(1000, i, 0.1f);  // nearly flat
    out.push_back(sampler.Sample(absl::MakeSpan(logits), history, 2));
    history.push_back(out.back());
  }
  return out;
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingParams p;
  p.seed = 42;
  p.top_p = 0.95f;
  p.frequency_penalty = 0.3f;
  EXPECT_EQ(Sequence(p, 1, 200), Sequence(p, 2, 200));  // explicit seed beats the default
  SamplingParams q = p;
  q.seed = 43;
  EXPECT_NE(Sequence(p, 1, 200), Sequence(q, 1, 200));
  SamplingParams unseeded = p;
  unseeded.seed.reset();
  EXPECT_EQ(Sequence(unseeded, 42, 200), Sequence(p, 0, 200));
  EXPECT_NE(Sequence(unseeded, 41, 200), Sequence(p, 0, 200));
}

// Samplers share their thread's working arrays: interleaved calls of two
// requests, over vocabularies of different sizes, with penalties, draw what
// each draws alone.
TEST(SamplerTest, InterleavedSamplersOnOneThreadDrawWhatEachDrawsAlone) {
  SamplingParams p;
  p.seed = 5;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.4f;
  p.frequency_penalty = 0.2f;
  SamplingParams q = p;
  q.seed = 6;
  q.top_k = 50;
  auto run = [](Sampler& s, int vocab, int i, std::vector<int32_t>& history) {
    std::vector<float> logits = RandomLogits(vocab, static_cast<uint32_t>(i), 0.5f);
    history.push_back(s.Sample(absl::MakeSpan(logits), history, 2));
  };
  std::vector<int32_t> alone_a = {3, 4}, alone_b = {5, 6};
  {
    Sampler a(p, 0);
    for (int i = 0; i < 100; ++i) run(a, 300, i, alone_a);
    Sampler b(q, 0);
    for (int i = 0; i < 100; ++i) run(b, 5000, i, alone_b);
  }
  std::vector<int32_t> mixed_a = {3, 4}, mixed_b = {5, 6};
  Sampler a(p, 0), b(q, 0);
  for (int i = 0; i < 100; ++i) {
    run(b, 5000, i, mixed_b);
    run(a, 300, i, mixed_a);
  }
  EXPECT_EQ(mixed_a, alone_a);
  EXPECT_EQ(mixed_b, alone_b);
}

TEST(SamplerTest, DrawIsPortableUniformFromMt19937_64) {
  // On 4 equal logits the token is floor(4 * u), u = (x >> 11) * 2^-53 with x the
  // next mt19937_64 output: one draw per call, no std:: distribution involved.
  SamplingParams p;
  p.seed = 2024;
  Sampler sampler(p, 0);
  std::mt19937_64 reference(2024);
  for (int i = 0; i < 500; ++i) {
    const double u = static_cast<double>(reference() >> 11) * 0x1.0p-53;
    EXPECT_EQ(SampleOnce(sampler, {1.f, 1.f, 1.f, 1.f}), static_cast<int32_t>(u * 4)) << i;
  }
}

TEST(SamplerTest, MaskedAndNaNLogitsAreNeverSampled) {
  std::vector<float> logits(10, 0.f);
  logits[0] = -kInf;
  logits[3] = kNaN;
  logits[7] = -kInf;
  SamplingParams p;
  p.temperature = 2.f;
  const std::vector<int> counts = Histogram(p, logits, 5000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[3], 0);
  EXPECT_EQ(counts[7], 0);
  for (int id : {1, 2, 4, 5, 6, 8, 9}) EXPECT_GT(counts[id], 0);

  Sampler greedy(Greedy(), 1);
  std::vector<float> l = {kNaN, 1.f, kNaN, 3.f, -kInf};
  EXPECT_EQ(greedy.Sample(absl::MakeSpan(l), {}, 0), 3);
  EXPECT_EQ(l[0], -kInf);  // NaN is rewritten as masked
}

TEST(SamplerTest, DegenerateLogitsDoNotCrash) {
  for (float t : {0.f, 1.f}) {
    SamplingParams p;
    p.temperature = t;
    p.top_p = 0.5f;
    p.min_p = 0.1f;
    p.repetition_penalty = 1.3f;
    Sampler sampler(p, 5);
    const std::vector<int32_t> history = {0, 1};
    std::vector<float> all_nan(8, kNaN), all_masked(8, -kInf), empty;
    EXPECT_EQ(sampler.Sample(absl::MakeSpan(all_nan), history, 1), 0);
    EXPECT_EQ(sampler.Sample(absl::MakeSpan(all_masked), history, 1), 0);
    EXPECT_EQ(sampler.Sample(absl::MakeSpan(empty), history, 1), 0);
    // +inf dominates everything finite.
    std::vector<float> pos_inf = {1.f, kInf, 3.f, kInf};
    const int32_t id = sampler.Sample(absl::MakeSpan(pos_inf), history, 1);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
}

TEST(SamplerTest, TinyTemperatureDoesNotOverflow) {
  SamplingParams p;
  p.temperature = 1e-6f;
  Sampler sampler(p, 5);
  std::vector<float> logits = RandomLogits(1000, 3, 1e30f);
  logits[10] = 1e32f;  // unique max; differences / 1e-6 overflow float
  EXPECT_EQ(SampleOnce(sampler, logits), 10);

  p.temperature = 1e-45f;  // valid, and 1 / temperature is +inf
  Sampler denormal(p, 5);
  EXPECT_EQ(SampleOnce(denormal, logits), 10);
}

TEST(SamplerTest, LargeVocabTopKAndTopP) {
  // A 150k vocab with typical settings: result is inside the top-k set.
  const std::vector<float> logits = RandomLogits(151936, 8, 2.f);
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  SamplingParams p;
  p.top_k = 40;
  p.top_p = 0.9f;
  p.temperature = 0.8f;
  Sampler sampler(p, 77);
  for (int i = 0; i < 50; ++i) {
    EXPECT_GE(logits[SampleOnce(sampler, logits)], sorted[39]);
  }
}

}  // namespace
}  // namespace cohost::runtime
