// Tenant budgets through the Router, on the tiny model: a tenant over its
// token rate is refused with a pushback while another tenant's requests run,
// what it generated counts against the rate, and a refusal by the model's
// own queue gives the tenant its tokens back.

#include <chrono>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "scheduler/router.h"
#include "tests/support/gated_sink.h"
#include "tests/support/requests.h"
#include "tests/support/tiny_model.h"

namespace cohost::scheduler {
namespace {

using ::testing::HasSubstr;
using testing::RecordingSink;

runtime::GenerateRequest Request(const std::string& tenant, int32_t prompt_len,
                                 int32_t max_tokens) {
  runtime::GenerateRequest r = cohost::testing::RandomGreedyRequest(prompt_len, max_tokens, 1);
  r.tenant = tenant;
  return r;
}

class TenantAdmissionTest : public ::testing::Test {
 protected:
  void Start(TenantPolicy tenants, AdmissionLimits limits = {}) {
    backend_ = kernels::MakeCpuBackend(1);
    runtime::EngineConfig config;
    config.block_size = 4;
    config.num_kv_blocks = 128;
    RouterOptions options;
    options.admission = limits;
    options.tenants = std::move(tenants);
    router_ = std::make_unique<Router>(backend_.get(), config, options);
    runtime::LoadedModel loaded;
    absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t =
        runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec());
    ASSERT_TRUE(t.ok());
    absl::StatusOr<std::unique_ptr<runtime::Model>> m =
        runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend_.get());
    ASSERT_TRUE(m.ok());
    loaded.tokenizer = *std::move(t);
    loaded.model = *std::move(m);
    ASSERT_TRUE(router_->AddModel("m", "tiny:m", std::move(loaded)).ok());
    model_ = *router_->Find("m");
  }
  void TearDown() override {
    model_.reset();
    router_.reset();
  }
  // The tenant "metered" at 60 tokens a minute (one a second); others free.
  void StartMetered() {
    TenantPolicy tenants;
    TenantLimits metered;
    metered.tokens_per_minute = 60;
    tenants.named["metered"] = metered;
    Start(tenants);
  }

  absl::StatusOr<runtime::RequestId> Run(const std::string& tenant, int32_t prompt, int32_t gen,
                                         std::shared_ptr<RecordingSink>* out = nullptr) {
    auto sink = std::make_shared<RecordingSink>();
    absl::StatusOr<runtime::RequestId> id =
        router_->Submit(model_, Request(tenant, prompt, gen), sink);
    if (id.ok()) {
      EXPECT_TRUE(sink->WaitFinished());
    }
    if (out != nullptr) *out = sink;
    return id;
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Router> router_;
  std::shared_ptr<ServedModel> model_;
};

TEST_F(TenantAdmissionTest, ATenantOverItsRateIsRefusedAndTheOtherIsNot) {
  StartMetered();

  std::shared_ptr<RecordingSink> sink;
  ASSERT_TRUE(Run("metered", 30, 20, &sink).ok());
  EXPECT_EQ(sink->tokens(), 20);
  // 30 prompt + 20 generated of 60: 10 left, so 20 more must wait ~10 s.
  absl::StatusOr<runtime::RequestId> refused = Run("metered", 20, 1);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("60 tokens per minute"));
  const std::optional<std::chrono::milliseconds> pushback = RetryPushback(refused.status());
  ASSERT_TRUE(pushback);
  EXPECT_GT(*pushback, std::chrono::milliseconds(9000)) << "the generated tokens counted";
  EXPECT_LE(*pushback, std::chrono::milliseconds(10000));
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(Run("free", 30, 20).ok()) << "another tenant is never held up by it";
  }
  EXPECT_TRUE(Run("metered", 5, 1).ok()) << "what is left still fits";
}

TEST_F(TenantAdmissionTest, AModelRefusalGivesTheTenantItsTokensBack) {
  TenantPolicy tenants;
  tenants.defaults.tokens_per_minute = 100;
  AdmissionLimits limits;
  limits.max_queued_requests = 0;  // the model refuses everything
  Start(tenants, limits);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<runtime::RequestId> r = Run("t", 80, 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("max_queued_requests"))
        << "the model's refusal, not the tenant's: its 80 tokens came back each time";
  }
}

// A call of several choices (HTTP's n) is charged its prompt once, as its
// usage counts it: the further choices find it in the prefix cache.
TEST_F(TenantAdmissionTest, AFurtherChoiceIsNotChargedThePromptAgain) {
  StartMetered();
  std::shared_ptr<RecordingSink> first;
  ASSERT_TRUE(Run("metered", 40, 1, &first).ok());  // 41 of 60 spent
  auto further = std::make_shared<RecordingSink>();
  // Charged 40 again, it was refused (19 left); it costs its one token.
  ASSERT_TRUE(router_
                  ->Submit(model_, Request("metered", 40, 1), further,
                           /*further_choice=*/true)
                  .ok());
  ASSERT_TRUE(further->WaitFinished());
  EXPECT_EQ(further->tokens(), 1);
  // 18 left (refilling one a second): a new request of 30 waits, one of 15 fits.
  EXPECT_EQ(Run("metered", 30, 1).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Run("metered", 15, 1).ok());
}

// A stop string's tokens were generated but never sent (the engine sends a
// token with its text): they are charged to the tenant at the finish.
TEST_F(TenantAdmissionTest, TokensAStopStringSwallowedAreChargedToo) {
  StartMetered();
  class TextSink : public RecordingSink {
   public:
    bool OnDelta(const runtime::TokenDelta& d) override {
      text += d.text;  // the engine's thread; read after the finish
      return RecordingSink::OnDelta(d);
    }
    std::string text;
  };
  auto probe = std::make_shared<TextSink>();  // what this prompt generates, another tenant's
  ASSERT_TRUE(router_->Submit(model_, Request("probe", 30, 12), probe).ok());
  ASSERT_TRUE(probe->WaitFinished());
  ASSERT_GE(probe->text.size(), 8u) << probe->text;

  runtime::GenerateRequest r = Request("metered", 30, 12);
  r.sampling.stop_strings = {probe->text.substr(0, 8)};
  auto stopped = std::make_shared<TextSink>();
  ASSERT_TRUE(router_->Submit(model_, r, stopped).ok());
  ASSERT_TRUE(stopped->WaitFinished());
  EXPECT_EQ(stopped->info().reason, runtime::FinishReason::kStopString);
  EXPECT_EQ(stopped->text, "");
  EXPECT_EQ(stopped->tokens(), 0) << "none sent";
  const int32_t generated = stopped->info().completion_tokens;
  ASSERT_GE(generated, 1);
  // 30 + `generated` of 60 spent: a prompt of what is left plus one is refused
  // (the bucket refills one token a second), had only the prompt been charged
  // it would fit.
  EXPECT_EQ(Run("metered", 60 - 30 - generated + 1 + 2, 1).status().code(),
            absl::StatusCode::kResourceExhausted)
      << generated << " generated tokens";
}

}  // namespace
}  // namespace cohost::scheduler
