// Admission by predicted TTFT through the Router, on a tiny model whose step
// cost is fixed (EngineConfig::step_cost: 1 s a step of 16 tokens), so that
// every prediction is exact: a request that would miss its model's TTFT
// target is refused up front with a pushback to when it would fit; once the
// backlog is gone the same request is admitted; a request whose first token
// cannot come before its deadline is refused with DEADLINE_EXCEEDED; and each
// prediction is booked against the actual TTFT. While a model's streams
// decode, its backlog is priced in the steps its TPOT target holds.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "scheduler/router.h"
#include "tests/support/gated_sink.h"
#include "tests/support/requests.h"
#include "tests/support/tiny_model.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Gate;
using ::testing::HasSubstr;
using testing::RecordingSink;

runtime::GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, uint32_t seed = 1) {
  return cohost::testing::RandomGreedyRequest(prompt_len, max_tokens, seed);
}

class TtftAdmissionTest : public ::testing::Test {
 protected:
  static runtime::EngineConfig Config() {
    runtime::EngineConfig config;
    config.block_size = 4;
    config.num_kv_blocks = 128;
    config.step_scheduler.max_num_seqs = 4;
    config.step_scheduler.max_tokens_per_step = 16;
    config.step_scheduler.max_prefill_chunk = 16;
    config.step_cost = runtime::StepCost{1.0, 0};
    return config;
  }
  void SetUp() override {
    backend_ = kernels::MakeCpuBackend(1);
    // Requests here may ask for any priority (who may raise one is
    // TenantBook's rule, tenants_test's).
    RouterOptions options;
    options.tenants.defaults.max_priority = 100;
    router_ = std::make_unique<Router>(backend_.get(), Config(), options);
  }
  void TearDown() override {
    gate_.Open();
    router_.reset();
  }

  std::shared_ptr<ServedModel> AddTiny(const ModelSpec& spec) {
    runtime::LoadedModel loaded;
    absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t =
        runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec());
    EXPECT_TRUE(t.ok()) << t.status();
    absl::StatusOr<std::unique_ptr<runtime::Model>> m =
        runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend_.get());
    EXPECT_TRUE(m.ok()) << m.status();
    if (!t.ok() || !m.ok()) return nullptr;
    loaded.tokenizer = *std::move(t);
    loaded.model = *std::move(m);
    EXPECT_TRUE(router_->AddLoadedModel(spec, std::move(loaded)).ok());
    absl::StatusOr<std::shared_ptr<ServedModel>> found = router_->Find(spec.name);
    return found.ok() ? *found : nullptr;
  }

  static ModelSpec Spec(const std::string& name, std::optional<int32_t> margin_pct) {
    ModelSpec spec;
    spec.name = name;
    spec.path = "tiny:" + name;
    spec.ttft_target = milliseconds(1500);
    spec.ttft_admit_margin_pct = margin_pct;
    return spec;
  }

  // Holds `m`'s engine thread inside the first delta of a request: what is
  // submitted from then on stays queued.
  std::shared_ptr<RecordingSink> Block(const std::shared_ptr<ServedModel>& m) {
    auto sink = std::make_shared<RecordingSink>(&gate_);
    EXPECT_TRUE(router_->Submit(m, Request(3, 20), sink).ok());
    EXPECT_TRUE(gate_.WaitEntered());
    return sink;
  }

  std::optional<runtime::Clock::duration> Predict(const ServedModel& m, int64_t tokens) {
    return router_->PredictTtft(m, tokens);
  }

  Gate gate_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Router> router_;
};

TEST_F(TtftAdmissionTest, RefusesUpFrontWhatWouldMissTheTargetAndAdmitsOnceTheLoadIsGone) {
  std::shared_ptr<ServedModel> m = AddTiny(Spec("m", /*margin_pct=*/0));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(Predict(*m, 16), seconds(1)) << "idle: one step";
  std::shared_ptr<RecordingSink> blocker = Block(m);

  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(16, 2), queued).ok()) << "1 s: within 1.5 s";
  EXPECT_EQ(Predict(*m, 16), seconds(2)) << "behind 16 queued tokens: two steps";

  auto refused_sink = std::make_shared<RecordingSink>();
  absl::StatusOr<runtime::RequestId> refused =
      router_->Submit(m, Request(16, 2, /*seed=*/2), refused_sink);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("target of 1500 ms: this request's first token is predicted in 2000 ms"));
  EXPECT_EQ(RetryPushback(refused.status()), milliseconds(500))
      << "the backlog must drain 500 ms for the target";
  EXPECT_EQ(RefusalReason(refused.status()), "ttft_target");
  EXPECT_EQ(m->admission().queued_requests(), 1) << "a refusal changes nothing";

  // A deadline its first token cannot meet: refused at once, whatever the target.
  runtime::GenerateRequest due = Request(4, 2, /*seed=*/3);
  due.deadline = runtime::Clock::now() + milliseconds(1200);
  absl::StatusOr<runtime::RequestId> late =
      router_->Submit(m, std::move(due), std::make_shared<RecordingSink>());
  ASSERT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("predicted in 2000 ms"));
  EXPECT_EQ(RefusalReason(late.status()), "deadline");
  EXPECT_EQ(RefusalReason(absl::DeadlineExceededError("the engine's")), "deadline")
      << "a deadline seen pass later is the deadline's too";
  EXPECT_EQ(RefusalReason(absl::UnavailableError("x")), "");

  gate_.Open();
  ASSERT_TRUE(blocker->WaitFinished());
  ASSERT_TRUE(queued->WaitFinished());
  EXPECT_FALSE(refused_sink->finished()) << "nobody calls a refused request's sink";
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return Predict(*m, 16) == seconds(1); }, seconds(60)))
      << "the backlog drains from the prediction";
  auto again = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(16, 2, /*seed=*/2), again).ok()) << "the load is gone";
  ASSERT_TRUE(again->WaitFinished());
  EXPECT_EQ(again->info().reason, runtime::FinishReason::kLength);

  const TtftPredictionTotals totals = m->ttft_predictions().totals();
  EXPECT_EQ(totals.count, 3) << "the blocker, the queued request and the one admitted later";
  EXPECT_DOUBLE_EQ(totals.predicted_seconds, 1 + 1 + 1) << "each behind nothing but its prompt";
  EXPECT_GT(totals.actual_seconds, 0);
  EXPECT_NEAR(totals.abs_error_seconds, totals.predicted_seconds - totals.actual_seconds, 1e-9)
      << "the tiny model beats a 1 s step every time";
}

TEST_F(TtftAdmissionTest, WithoutAMarginTheTargetOnlyOrdersWork) {
  std::shared_ptr<ServedModel> m = AddTiny(Spec("m", std::nullopt));
  ASSERT_NE(m, nullptr);
  std::shared_ptr<RecordingSink> blocker = Block(m);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 4; ++i) {
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(router_->Submit(m, Request(16, 2, i), sinks.back()).ok()) << i;
  }
  EXPECT_EQ(Predict(*m, 16), seconds(5)) << "predicted all the same, for the metrics";
  gate_.Open();
  for (auto& s : sinks) ASSERT_TRUE(s->WaitFinished());
}

TEST_F(TtftAdmissionTest, ARequestIsPredictedBehindOnlyWhatItsPriorityWaitsFor) {
  std::shared_ptr<ServedModel> m = AddTiny(Spec("m", /*margin_pct=*/0));
  ASSERT_NE(m, nullptr);
  std::shared_ptr<RecordingSink> blocker = Block(m);
  const auto submit = [&](int32_t priority, uint32_t seed) {
    runtime::GenerateRequest r = Request(16, 2, seed);
    r.priority = priority;
    return router_->Submit(m, std::move(r), std::make_shared<RecordingSink>());
  };
  ASSERT_TRUE(submit(-1, 1).ok()) << "alone: one step";
  EXPECT_EQ(Predict(*m, 16), seconds(1)) << "priority 0 is admitted before the -1 queued";
  EXPECT_EQ(router_->PredictTtft(*m, 16, -1), seconds(2));
  ASSERT_TRUE(submit(0, 2).ok()) << "1 s, not the 2 s it would be behind the -1";
  absl::StatusOr<runtime::RequestId> low = submit(-1, 3);
  ASSERT_EQ(low.status().code(), absl::StatusCode::kResourceExhausted)
      << "behind both: 3 s against the 1.5 s target";
  EXPECT_EQ(RetryPushback(low.status()), milliseconds(1500));
  ASSERT_TRUE(submit(7, 4).ok()) << "above everything queued";
  gate_.Open();
  ASSERT_TRUE(blocker->WaitFinished());
}

TEST_F(TtftAdmissionTest, ACachedPromptIsPredictedAsWhatIsLeftToCompute) {
  std::shared_ptr<ServedModel> m = AddTiny(Spec("m", /*margin_pct=*/0));
  ASSERT_NE(m, nullptr);
  // 32 tokens are two 16-token steps: 2 s, over the 1.5 s target.
  EXPECT_EQ(router_->Submit(m, Request(32, 2, /*seed=*/5), std::make_shared<RecordingSink>())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  runtime::GenerateRequest warm = Request(16, 2, /*seed=*/5);  // the same first 16 tokens
  auto warmed = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, warm, warmed).ok());
  ASSERT_TRUE(warmed->WaitFinished());
  runtime::GenerateRequest twice = Request(32, 2, /*seed=*/5);
  ASSERT_EQ(std::vector<int32_t>(twice.prompt_ids.begin(), twice.prompt_ids.begin() + 16),
            warm.prompt_ids);
  EXPECT_EQ(m->CachedPromptTokens(twice), 16) << "four whole blocks of 4";
  runtime::GenerateRequest other_tenant = twice;
  other_tenant.tenant = "b";
  EXPECT_EQ(m->CachedPromptTokens(other_tenant), 0) << "tenants never share cached blocks";
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, twice, sink).ok()) << "16 tokens left: one step, 1 s";
  ASSERT_TRUE(sink->WaitFinished());
  EXPECT_EQ(sink->info().cached_prompt_tokens, 16);
}

TEST_F(TtftAdmissionTest, OtherModelsBacklogOnTheDeviceCounts) {
  std::shared_ptr<ServedModel> quiet = AddTiny(Spec("quiet", 0));
  std::shared_ptr<ServedModel> busy = AddTiny(Spec("busy", std::nullopt));
  ASSERT_NE(quiet, nullptr);
  ASSERT_NE(busy, nullptr);
  std::shared_ptr<RecordingSink> blocker = Block(busy);  // the device's one executor waits
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(busy, Request(32, 2), queued).ok());
  EXPECT_EQ(Predict(*quiet, 16), seconds(3)) << "two of busy's steps, then one of its own";
  absl::StatusOr<runtime::RequestId> refused =
      router_->Submit(quiet, Request(16, 2), std::make_shared<RecordingSink>());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryPushback(refused.status()), milliseconds(1500));
  gate_.Open();
  ASSERT_TRUE(queued->WaitFinished());
}

// Records like RecordingSink and holds the engine inside the stream's second
// delta: by then the step that produced its first token has published it as
// decoding.
class SecondDeltaSink : public RecordingSink {
 public:
  explicit SecondDeltaSink(Gate* gate) : gate_(gate) {}
  bool OnDelta(const runtime::TokenDelta& d) override {
    const bool more = RecordingSink::OnDelta(d);
    if (++deltas_ == 2) gate_->Enter();
    return more;
  }

 private:
  Gate* gate_;
  int deltas_ = 0;  // the engine thread's alone
};

TEST_F(TtftAdmissionTest, WhileItsStreamsDecodeItsBacklogIsPricedInTpotSizedSteps) {
  // 250 ms a step plus 1/128 s a token: the model's 297 ms TPOT target holds
  // a step of 6 tokens (the executor's floor is 4 here), as the executor sizes
  // the steps while streams decode (StepTokenCap).
  runtime::EngineConfig config = Config();
  config.step_cost = runtime::StepCost{0.25, 0.0078125};
  RouterOptions options;
  options.executor.min_slice_tokens = 4;
  router_ = std::make_unique<Router>(backend_.get(), config, options);
  ModelSpec spec = Spec("m", std::nullopt);
  spec.tpot_target = milliseconds(297);
  std::shared_ptr<ServedModel> m = AddTiny(spec);
  ASSERT_NE(m, nullptr);
  const auto seconds_of = [](std::optional<runtime::Clock::duration> d) {
    return d ? std::chrono::duration<double>(*d).count() : -1.0;
  };
  EXPECT_NEAR(seconds_of(Predict(*m, 16)), 0.25 + 16 * 0.0078125, 1e-6)
      << "nothing decoding: one step of the whole budget";
  auto streaming = std::make_shared<SecondDeltaSink>(&gate_);
  ASSERT_TRUE(router_->Submit(m, Request(3, 20), streaming).ok());
  ASSERT_TRUE(gate_.WaitEntered());
  EXPECT_NEAR(seconds_of(Predict(*m, 16)), 3 * 0.25 + 16 * 0.0078125, 1e-6)
      << "a stream decoding: steps of 6 tokens, three of them";
  gate_.Open();
  ASSERT_TRUE(streaming->WaitFinished());
}

}  // namespace
}  // namespace cohost::scheduler
