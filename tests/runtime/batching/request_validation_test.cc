// ValidateRequest and DefaultMaxTokens: every rule, each at its boundary, and
// the message a client sees naming the limit.

#include "runtime/batching/request_validation.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;

constexpr RequestLimits kLimits{/*vocab_size=*/100, /*context_length=*/64,
                                /*kv_capacity_tokens=*/48, /*max_unchunked_tokens=*/0};

GenerateRequest Request(int32_t prompt_len, int32_t max_tokens) {
  GenerateRequest r;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(i % 100);
  r.sampling.max_tokens = max_tokens;
  return r;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ValidateRequestTest, AcceptsWhatFitsExactly) {
  EXPECT_TRUE(ValidateRequest(Request(1, 1), kLimits).ok());
  EXPECT_TRUE(ValidateRequest(Request(40, 8), kLimits).ok()) << "exactly the KV pool";
}

TEST(ValidateRequestTest, EmptyPromptAndIdsOutsideTheVocabulary) {
  EXPECT_THAT(Message(ValidateRequest(Request(0, 4), kLimits)), HasSubstr("prompt is empty"));
  for (int32_t bad : {-1, 100, std::numeric_limits<int32_t>::max()}) {
    GenerateRequest r = Request(3, 4);
    r.prompt_ids[2] = bad;
    absl::Status s = ValidateRequest(r, kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Message(s), HasSubstr("prompt token 2 is id " + std::to_string(bad)));
    EXPECT_THAT(Message(s), HasSubstr("[0, 100)"));
  }
}

TEST(ValidateRequestTest, SamplingValuesGoThroughSamplingParamsValidate) {
  GenerateRequest r = Request(3, 4);
  r.sampling.top_p = 0.f;
  EXPECT_THAT(Message(ValidateRequest(r, kLimits)), HasSubstr("top_p"));
  r = Request(3, 4);
  r.sampling.stop_token_ids = {100};
  EXPECT_THAT(Message(ValidateRequest(r, kLimits)), HasSubstr("stop_token_ids[0]"));
  r = Request(3, 0);
  EXPECT_THAT(Message(ValidateRequest(r, kLimits)), HasSubstr("max_tokens must be >= 1"));
}

TEST(ValidateRequestTest, ContextPoolAndUnchunkedStepEachBound) {
  RequestLimits roomy_pool = kLimits;
  roomy_pool.kv_capacity_tokens = 1000;
  EXPECT_TRUE(ValidateRequest(Request(60, 4), roomy_pool).ok()) << "exactly the context";
  absl::Status s = ValidateRequest(Request(60, 5), roomy_pool);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("This model's maximum context length is 64 tokens"));
  EXPECT_TRUE(IsContextLengthExceeded(s));
  EXPECT_FALSE(IsContextLengthExceeded(absl::InvalidArgumentError("other")));

  s = ValidateRequest(Request(40, 9), kLimits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("maximum context length is 48 tokens here (its KV pool)"));
  EXPECT_TRUE(IsContextLengthExceeded(s));

  RequestLimits unchunked = kLimits;
  unchunked.max_unchunked_tokens = 10;
  EXPECT_TRUE(ValidateRequest(Request(8, 3), unchunked).ok()) << "prompt + max_tokens - 1 = 10";
  s = ValidateRequest(Request(8, 4), unchunked);
  EXPECT_THAT(Message(s), HasSubstr("11 tokens here (chunked prefill is off"));

  RequestLimits unchecked_pool = kLimits;
  unchecked_pool.kv_capacity_tokens = 0;
  EXPECT_TRUE(ValidateRequest(Request(40, 24), unchecked_pool).ok()) << "0 = the pool unchecked";
}

TEST(DefaultMaxTokensTest, TheDefaultCappedByEveryLimit) {
  RequestLimits big{/*vocab_size=*/100, /*context_length=*/4096, /*kv_capacity_tokens=*/0, 0};
  EXPECT_EQ(DefaultMaxTokens(10, big).value(), kDefaultMaxTokens);
  EXPECT_EQ(DefaultMaxTokens(30, kLimits).value(), 18) << "the KV pool leaves 18";
  RequestLimits roomy_pool = kLimits;
  roomy_pool.kv_capacity_tokens = 1000;
  EXPECT_EQ(DefaultMaxTokens(30, roomy_pool).value(), 34) << "the context leaves 34";
  RequestLimits unchunked = big;
  unchunked.max_unchunked_tokens = 20;
  EXPECT_EQ(DefaultMaxTokens(15, unchunked).value(), 6) << "one step of 20 holds 15 + 6 - 1";
  // What it returns always passes ValidateRequest, and it refuses exactly the
  // prompts that even one token would not fit.
  for (const RequestLimits& l : {big, kLimits, roomy_pool, unchunked}) {
    for (int32_t prompt : {1, 7, 15, 20, 21, 30, 47, 48, 63, 64}) {
      absl::StatusOr<int32_t> n = DefaultMaxTokens(prompt, l);
      const bool one_fits = ValidateRequest(Request(prompt, 1), l).ok();
      EXPECT_EQ(n.ok(), one_fits) << prompt;
      if (n.ok()) {
        EXPECT_TRUE(ValidateRequest(Request(prompt, *n), l).ok()) << prompt;
      }
    }
  }
}

TEST(DefaultMaxTokensTest, APromptThatLeavesNoRoomIsInvalid) {
  absl::StatusOr<int32_t> n = DefaultMaxTokens(48, kLimits);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(n.status()), HasSubstr("leaves no room"));
  EXPECT_TRUE(DefaultMaxTokens(47, kLimits).ok());
}

}  // namespace
}  // namespace cohost::runtime
