#include "runtime/sampling/sampling_params.h"

#include <functional>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kVocab = 1000;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct FloatField {
  const char* name;
  std::function<void(SamplingParams&, float)> set;
  std::vector<float> good;                         // boundaries and an interior value
  std::vector<std::pair<float, const char*>> bad;  // value, how the message prints it
};

std::vector<FloatField> FloatFields() {
  const std::vector<std::pair<float, const char*>> non_finite = {
      {kNaN, "nan"}, {kInf, "inf"}, {-kInf, "-inf"}};
  auto with = [&](std::vector<std::pair<float, const char*>> bad) {
    bad.insert(bad.end(), non_finite.begin(), non_finite.end());
    return bad;
  };
  return {
      {"temperature",
       [](SamplingParams& p, float v) { p.temperature = v; },
       {0.f, 0.7f, 100.f},
       with({{-0.5f, "-0.5"}, {100.5f, "100.5"}})},
      {"top_p",
       [](SamplingParams& p, float v) { p.top_p = v; },
       {1e-6f, 0.9f, 1.f},
       with({{0.f, "got 0"}, {-0.25f, "-0.25"}, {1.5f, "1.5"}})},
      {"min_p",
       [](SamplingParams& p, float v) { p.min_p = v; },
       {0.f, 0.05f, 1.f},
       with({{-0.25f, "-0.25"}, {1.25f, "1.25"}})},
      {"repetition_penalty",
       [](SamplingParams& p, float v) { p.repetition_penalty = v; },
       {1e-6f, 1.f, 10.f},
       with({{0.f, "got 0"}, {-1.f, "-1"}, {10.5f, "10.5"}})},
      {"presence_penalty",
       [](SamplingParams& p, float v) { p.presence_penalty = v; },
       {-2.f, 0.f, 2.f},
       with({{-2.5f, "-2.5"}, {2.5f, "2.5"}})},
      {"frequency_penalty",
       [](SamplingParams& p, float v) { p.frequency_penalty = v; },
       {-2.f, 0.5f, 2.f},
       with({{-2.5f, "-2.5"}, {2.5f, "2.5"}})},
  };
}

TEST(SamplingParamsTest, DefaultsAreValid) { EXPECT_TRUE(SamplingParams().Validate(kVocab).ok()); }

TEST(SamplingParamsTest, FloatFieldsAcceptBoundaries) {
  for (const FloatField& f : FloatFields()) {
    for (float v : f.good) {
      SamplingParams p;
      f.set(p, v);
      EXPECT_TRUE(p.Validate(kVocab).ok()) << f.name << "=" << v << ": " << p.Validate(kVocab);
    }
  }
}

TEST(SamplingParamsTest, FloatFieldsRejectOutOfRangeAndNonFinite) {
  for (const FloatField& f : FloatFields()) {
    for (const auto& [v, printed] : f.bad) {
      SamplingParams p;
      f.set(p, v);
      const absl::Status s = p.Validate(kVocab);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << f.name << "=" << v;
      EXPECT_THAT(std::string(s.message()), HasSubstr(f.name)) << v;
      EXPECT_THAT(std::string(s.message()), HasSubstr(printed)) << f.name;
    }
  }
}

void ExpectInvalid(const SamplingParams& p, const std::string& field, const std::string& value) {
  const absl::Status s = p.Validate(kVocab);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field << " " << value;
  EXPECT_THAT(std::string(s.message()), HasSubstr(field));
  EXPECT_THAT(std::string(s.message()), HasSubstr(value));
}

TEST(SamplingParamsTest, TopK) {
  for (int32_t k : {0, 1, kVocab}) {
    SamplingParams p;
    p.top_k = k;
    EXPECT_TRUE(p.Validate(kVocab).ok()) << k;
  }
  SamplingParams p;
  p.top_k = -1;
  ExpectInvalid(p, "top_k", "-1");
  p.top_k = kVocab + 1;
  ExpectInvalid(p, "top_k", "1001");
  p.top_k = std::numeric_limits<int32_t>::min();
  ExpectInvalid(p, "top_k", "-2147483648");
}

TEST(SamplingParamsTest, MaxTokens) {
  SamplingParams p;
  p.max_tokens = 1;
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.max_tokens = std::numeric_limits<int32_t>::max();
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.max_tokens = 0;
  ExpectInvalid(p, "max_tokens", "0");
  p.max_tokens = -7;
  ExpectInvalid(p, "max_tokens", "-7");
}

TEST(SamplingParamsTest, Seed) {
  SamplingParams p;
  p.seed = 0;
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.seed = std::numeric_limits<uint64_t>::max();
  EXPECT_TRUE(p.Validate(kVocab).ok());
}

TEST(SamplingParamsTest, StopTokenIds) {
  SamplingParams p;
  p.stop_token_ids = {0, 5, kVocab - 1};
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.stop_token_ids = {3, -1};
  ExpectInvalid(p, "stop_token_ids[1]", "-1");
  p.stop_token_ids = {kVocab};
  ExpectInvalid(p, "stop_token_ids[0]", "1000");
  // Every generated token is checked against each: a bounded list.
  p.stop_token_ids.assign(kMaxStopTokenIds, 7);
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.stop_token_ids.push_back(7);
  ExpectInvalid(p, "stop_token_ids", "257");
}

TEST(SamplingParamsTest, LogitBias) {
  SamplingParams p;
  p.logit_bias = {{0, -100.f}, {5, 0.5f}, {kVocab - 1, 100.f}};
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.logit_bias = {{kVocab, 1.f}};
  ExpectInvalid(p, "logit_bias", "1000");
  p.logit_bias = {{-1, 1.f}};
  ExpectInvalid(p, "logit_bias", "-1");
  p.logit_bias = {{3, 100.5f}};
  ExpectInvalid(p, "logit_bias of token 3", "100.5");
  p.logit_bias = {{3, std::numeric_limits<float>::quiet_NaN()}};
  ExpectInvalid(p, "logit_bias of token 3", "nan");
  p.logit_bias = {{3, 1.f}, {3, 2.f}};
  ExpectInvalid(p, "logit_bias", "once");
  p.logit_bias.clear();
  for (int32_t t = 0; t < kMaxLogitBias; ++t) p.logit_bias.push_back({t, 1.f});
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.logit_bias.push_back({kMaxLogitBias, 1.f});
  ExpectInvalid(p, "logit_bias", "301");
}

TEST(SamplingParamsTest, StopStrings) {
  SamplingParams p;
  p.stop_strings.assign(16, "x");
  p.stop_strings[0] = std::string(256, 'a');
  EXPECT_TRUE(p.Validate(kVocab).ok());

  p.stop_strings.push_back("y");
  ExpectInvalid(p, "stop has", "17");

  p.stop_strings = {"ok", ""};
  ExpectInvalid(p, "stop[1]", "empty");

  p.stop_strings = {std::string(257, 'a')};
  ExpectInvalid(p, "stop[0]", "257");
}

TEST(SamplingParamsTest, AJsonFormatNeedsTheEndOfGeneration) {
  SamplingParams p;
  p.response_format = ResponseFormat::kJsonObject;
  EXPECT_TRUE(p.Validate(kVocab).ok());
  p.ignore_eos = true;
  ExpectInvalid(p, "ignore_eos", "JSON");
  p.response_format = ResponseFormat::kText;
  EXPECT_TRUE(p.Validate(kVocab).ok());
}

TEST(SamplingParamsTest, RejectsBadVocabSize) {
  EXPECT_EQ(SamplingParams().Validate(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SamplingParams().Validate(-3).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::runtime
