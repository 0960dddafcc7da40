// An engine on a shared KV pool gives memory back by whole groups, and picks
// the groups it can give back soonest: an empty group goes at once even while
// a group above it is held, without preempting anyone, and each ask chooses
// again.

#include <memory>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "runtime/engine/engine.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/support/collecting_sink.h"
#include "tests/support/requests.h"
#include "tests/support/tiny_model.h"

namespace cohost::runtime {
namespace {

// A device budget of its own: grants up to `limit` bytes.
class CountingBudget : public KvBudget {
 public:
  explicit CountingBudget(int64_t limit) : limit_(limit) {}
  bool Acquire(int64_t bytes, RequestId /*oldest*/) override {
    if (held_ + bytes > limit_) return false;
    held_ += bytes;
    return true;
  }
  void Release(int64_t bytes) override { held_ -= bytes; }
  int64_t held() const { return held_; }

 private:
  int64_t limit_;
  int64_t held_ = 0;
};

class EngineKvReclaimTest : public ::testing::Test {
 protected:
  static constexpr int32_t kBlock = 4;

  void SetUp() override {
    backend_ = kernels::MakeCpuBackend(1);
    model_ = Model::Create(testing::MakeTinyModelFile(), backend_.get()).value();
    tokenizer_ = Tokenizer::Create(testing::MakeByteTokenizerSpec()).value();
    const ModelConfig& c = model_->config();
    const kernels::DType dtype = backend_->kv_dtype();
    group_blocks_ = KvCache::GroupBlocks(c, dtype, kBlock, backend_->vm_granularity(), 0);
    group_bytes_ =
        int64_t{group_blocks_} * static_cast<int64_t>(KvCache::BytesPerBlock(c, dtype, kBlock));
  }

  EngineConfig Config(KvBudget* budget, int64_t groups) const {
    EngineConfig c;
    c.block_size = kBlock;
    c.kv_cache_bytes = groups * group_bytes_;
    c.kv_group_min_bytes = 0;  // the smallest group the backend can back
    c.kv_budget = budget;
    c.step_scheduler.max_num_seqs = 4;
    c.step_scheduler.max_tokens_per_step = 256;
    c.step_scheduler.max_prefill_chunk = 256;
    return c;
  }

  std::vector<int32_t> Reference(const GenerateRequest& r) {
    EngineConfig c;
    c.block_size = kBlock;
    c.num_kv_blocks = 128;
    auto e = Engine::Create(model_.get(), tokenizer_.get(), c).value();
    auto sink = std::make_shared<cohost::testing::CollectingSink>();
    EXPECT_TRUE(e->Submit(r, sink).ok());
    while (e->Step().value()) {
    }
    return sink->ids();
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int32_t group_blocks_ = 0;
  int64_t group_bytes_ = 0;
};

TEST_F(EngineKvReclaimTest, AnEmptyGroupGoesAtOnceWhileAHigherOneIsHeld) {
  CountingBudget budget(int64_t{1} << 40);
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), Config(&budget, 8)).value();
  // `wide` spans more than two groups (0, 1 and part of 2); `narrow`, admitted
  // after it in the same step, takes its blocks after wide's, in the top group.
  const int32_t wide_tokens = 2 * group_blocks_ * kBlock + 2 * kBlock;
  ASSERT_LE(wide_tokens + 8, model_->config().max_position_embeddings);
  auto wide = std::make_shared<cohost::testing::CollectingSink>();
  auto narrow = std::make_shared<cohost::testing::CollectingSink>();
  const GenerateRequest narrow_request = cohost::testing::RandomGreedyRequest(8, 24, 2);
  ASSERT_TRUE(engine->Submit(cohost::testing::RandomGreedyRequest(wide_tokens, 1, 1), wide).ok());
  ASSERT_TRUE(engine->Submit(narrow_request, narrow).ok());
  while (!wide->finished()) ASSERT_TRUE(engine->Step().value());
  ASSERT_FALSE(narrow->finished());
  ASSERT_EQ(budget.held(), 3 * group_bytes_);

  // Group 1 holds nothing now; group 2 holds narrow's blocks. Group 1 goes,
  // at once and without preempting, though it is not the top group.
  EXPECT_EQ(engine->ReclaimKv(group_bytes_, group_bytes_, kPreemptNever), group_bytes_);
  EXPECT_EQ(budget.held(), 2 * group_bytes_);
  EXPECT_EQ(engine->Stats().num_preemptions, 0);

  while (engine->Step().value()) {
  }
  ASSERT_TRUE(narrow->finished());
  EXPECT_EQ(narrow->ids(), Reference(narrow_request));
  EXPECT_EQ(engine->Stats().num_preemptions, 0);
}

// The pool grants whole groups, never past the engine's share: a share of
// two and a half groups holds two, and the engine says so before any
// request (RequestLimitsFor, what placement validates with) instead of
// accepting one that fits only the half group it can never back; a share
// below one group is refused at Create, with the sizes.
TEST_F(EngineKvReclaimTest, AShareHoldsWholeGroupsOnlyAndSaysSo) {
  CountingBudget budget(int64_t{1} << 40);
  EngineConfig config = Config(&budget, 2);
  config.kv_cache_bytes += group_bytes_ / 2;
  const int64_t whole = (int64_t{2} * group_blocks_ - 1) * kBlock;  // less the null block
  EXPECT_EQ(Engine::RequestLimitsFor(model_->config(), *backend_, config).kv_capacity_tokens,
            whole);
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), config).value();
  EXPECT_EQ(engine->kv_capacity_tokens(), whole);
  // The largest request that fits runs to its end on two groups.
  const int32_t prompt = static_cast<int32_t>(whole) - 4;
  ASSERT_LE(prompt + 4, model_->config().max_position_embeddings);
  auto sink = std::make_shared<cohost::testing::CollectingSink>();
  ASSERT_TRUE(engine->Submit(cohost::testing::RandomGreedyRequest(prompt, 4, 3), sink).ok());
  for (int i = 0; i < 1000 && !sink->finished(); ++i) ASSERT_TRUE(engine->Step().ok());
  ASSERT_TRUE(sink->finished()) << "a request the engine accepted never ran";
  EXPECT_EQ(sink->ids().size(), 4u);
  EXPECT_EQ(budget.held(), 2 * group_bytes_);
  // One more token than two groups hold: refused at once.
  auto over = std::make_shared<cohost::testing::CollectingSink>();
  EXPECT_FALSE(engine->Submit(cohost::testing::RandomGreedyRequest(prompt + 1, 4, 4), over).ok());

  EngineConfig tiny = Config(&budget, 1);
  tiny.kv_cache_bytes = group_bytes_ - 1;
  absl::StatusOr<std::unique_ptr<Engine>> none =
      Engine::Create(model_.get(), tokenizer_.get(), tiny);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted) << none.status();
  EXPECT_NE(std::string(none.status().message()).find("group"), std::string::npos) << none.status();
}

// Which groups drain is chosen again at each ask: a group that emptied since
// the last ask goes at once, instead of waiting for the one chosen then.
TEST_F(EngineKvReclaimTest, EachAskChoosesAgainSoAGroupThatEmptiedSinceGoesAtOnce) {
  CountingBudget budget(int64_t{1} << 40);
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), Config(&budget, 8)).value();
  // wide fills groups 0 and 1 (group 0 less its null block) and three blocks
  // of group 2, with room in its last block for its second token; narrow (two
  // blocks, room for two more tokens) follows it in group 2. Neither needs a
  // new block for two steps.
  const int32_t wide_tokens = 2 * group_blocks_ * kBlock + 2 * kBlock - 2;
  auto wide = std::make_shared<cohost::testing::CollectingSink>();
  auto narrow = std::make_shared<cohost::testing::CollectingSink>();
  const GenerateRequest narrow_request = cohost::testing::RandomGreedyRequest(6, 24, 4);
  ASSERT_TRUE(engine->Submit(cohost::testing::RandomGreedyRequest(wide_tokens, 2, 3), wide).ok());
  ASSERT_TRUE(engine->Submit(narrow_request, narrow).ok());
  ASSERT_TRUE(engine->Step().value());
  ASSERT_EQ(budget.held(), 3 * group_bytes_);

  // Group 2 holds fewer blocks than group 1: it drains, and cannot go yet.
  EXPECT_EQ(engine->ReclaimKv(group_bytes_, group_bytes_, kPreemptNever), 0);
  ASSERT_TRUE(engine->Step().value());
  ASSERT_TRUE(wide->finished());
  EXPECT_EQ(budget.held(), 3 * group_bytes_) << "narrow still holds the draining group";

  // Group 1 emptied: asked again, the engine gives it instead.
  EXPECT_EQ(engine->ReclaimKv(group_bytes_, group_bytes_, kPreemptNever), group_bytes_);
  EXPECT_EQ(budget.held(), 2 * group_bytes_);
  while (engine->Step().value()) {
  }
  ASSERT_TRUE(narrow->finished());
  EXPECT_EQ(narrow->ids(), Reference(narrow_request));
  EXPECT_EQ(engine->Stats().num_preemptions, 0);
}

// Wound-wait (kv_budget.h): asked on behalf of work no older than its own,
// an engine only drains; asked for older work, it preempts the sequences
// holding what it owes, and when everything is owed, every sequence goes and
// the null block's group too. The preempted request is recomputed to the
// same output.
TEST_F(EngineKvReclaimTest, PreemptsOnlyForOlderWorkAndCanGiveBackEveryGroup) {
  CountingBudget budget(int64_t{1} << 40);
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), Config(&budget, 8)).value();
  const GenerateRequest request =
      cohost::testing::RandomGreedyRequest(2 * group_blocks_ * kBlock, 8, 5);
  ASSERT_LE(static_cast<int32_t>(request.prompt_ids.size()) + 8,
            model_->config().max_position_embeddings);
  auto sink = std::make_shared<cohost::testing::CollectingSink>();
  absl::StatusOr<RequestId> id = engine->Submit(request, sink);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(engine->Step().value());
  const int64_t held = budget.held();
  ASSERT_EQ(held, 3 * group_bytes_) << "groups 0 and 1, and group 2 for the null block's place";

  EXPECT_EQ(engine->ReclaimKv(held, held, /*wounder=*/*id), 0) << "as old as its own: it waits";
  EXPECT_EQ(engine->ReclaimKv(held, held, /*wounder=*/*id + 1), 0) << "younger: it waits";
  EXPECT_EQ(budget.held(), held);
  EXPECT_EQ(engine->ReclaimKv(held, held, /*wounder=*/*id - 1), held) << "older work: all goes";
  EXPECT_EQ(budget.held(), 0);

  while (engine->Step().value()) {
  }
  ASSERT_TRUE(sink->finished());
  EXPECT_EQ(sink->ids(), Reference(request));
  EXPECT_EQ(engine->Stats().num_preemptions, 1);
}

// An engine's age in the wound-wait order is that of the work it serves: a
// low-priority request that younger high-priority ones keep waiting lends it
// nothing (else a stream of young requests would wound older work elsewhere
// for as long as it lasts).
TEST_F(EngineKvReclaimTest, ItsAgeIsTheWorkItServesNotARequestPrioritiesHoldBack) {
  CountingBudget budget(int64_t{1} << 40);
  EngineConfig config = Config(&budget, 8);
  config.step_scheduler.max_num_seqs = 1;
  config.step_scheduler.max_tokens_per_step = 64;
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), config).value();
  GenerateRequest low = cohost::testing::RandomGreedyRequest(8, 8, 6);
  low.priority = 0;
  GenerateRequest high = cohost::testing::RandomGreedyRequest(8, 8, 7);
  high.priority = 5;
  std::vector<std::shared_ptr<cohost::testing::CollectingSink>> sinks;
  std::vector<RequestId> ids;
  for (const GenerateRequest* r : {&low, &high, &high}) {
    sinks.push_back(std::make_shared<cohost::testing::CollectingSink>());
    absl::StatusOr<RequestId> id = engine->Submit(*r, sinks.back());
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  ASSERT_TRUE(engine->Step().value());  // the first high one runs; the other waits ahead of low
  EXPECT_EQ(engine->KvSeniority(), ids[1]);
  const int64_t held = budget.held();
  ASSERT_GT(held, 0);
  // An asker whose work is younger than low but older than the running one:
  // this engine's work is younger than the asker's, so it preempts.
  EXPECT_EQ(engine->ReclaimKv(held, held, /*wounder=*/ids[0]), held);
  while (engine->Step().value()) {
  }
  for (const auto& sink : sinks) EXPECT_TRUE(sink->finished());
}

// Work that waits for memory itself, asked by younger work, gives nothing
// back, not even a group it holds empty: given away, the engine would take it
// back by preempting the asker's sequences, and both would only recompute.
TEST_F(EngineKvReclaimTest, OlderWorkWaitingForMemoryKeepsWhatItHolds) {
  CountingBudget budget(2 * group_bytes_);
  EngineConfig config = Config(&budget, 8);
  config.step_scheduler.max_tokens_per_step = 4096;
  config.step_scheduler.max_prefill_chunk = 4096;
  auto engine = Engine::Create(model_.get(), tokenizer_.get(), config).value();
  // `small` fits group 0; `large` needs more than the two groups the budget
  // grants: the engine grows a second group, empty, and still cannot start it.
  auto small = std::make_shared<cohost::testing::CollectingSink>();
  auto large = std::make_shared<cohost::testing::CollectingSink>();
  const int32_t large_tokens = 2 * group_blocks_ * kBlock;
  ASSERT_LE(large_tokens + 4, model_->config().max_position_embeddings);
  ASSERT_TRUE(engine->Submit(cohost::testing::RandomGreedyRequest(4, 64, 8), small).ok());
  absl::StatusOr<RequestId> large_id =
      engine->Submit(cohost::testing::RandomGreedyRequest(large_tokens, 4, 9), large);
  ASSERT_TRUE(large_id.ok());
  ASSERT_TRUE(engine->Step().value());
  ASSERT_TRUE(engine->Step().value());
  ASSERT_EQ(budget.held(), 2 * group_bytes_);
  EXPECT_EQ(engine->ReclaimKv(group_bytes_, group_bytes_, /*wounder=*/*large_id + 1), 0)
      << "its work is older and waits for memory";
  EXPECT_EQ(budget.held(), 2 * group_bytes_);
  EXPECT_EQ(engine->Stats().num_preemptions, 0);
}

}  // namespace
}  // namespace cohost::runtime
