// DeviceExecutor on tiny random-weight models: one thread steps several
// engines that own none; a first token waiting on a quiet model goes ahead of
// a flooded model's backlog; steps are capped to a slice only while engines
// share the device; Detach waits for a step in progress; an engine that
// cannot get memory is retried with a backoff rather than spun on.

#include "scheduler/device_executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "runtime/engine/kv_budget.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/support/gated_sink.h"
#include "tests/support/tiny_model.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::Engine;
using runtime::FinishInfo;
using runtime::FinishReason;
using runtime::GenerateRequest;
using runtime::TokenDelta;
using std::chrono::milliseconds;

constexpr auto kWait = std::chrono::seconds(60);

// Targets with a TTFT target of `ttft` and the rest as by default.
EngineTargets DueIn(std::chrono::milliseconds ttft) {
  EngineTargets t;
  t.ttft_target = ttft;
  return t;
}

// Counts first tokens across all sinks of a test, to compare their order.
struct Order {
  std::atomic<int> next{0};
};

class Sink : public runtime::TokenSink {
 public:
  explicit Sink(Order* order = nullptr) : order_(order) {}
  bool OnDelta(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (tokens_ == 0 && order_ != nullptr) first_token_rank_ = order_->next++;
    tokens_ += static_cast<int>(d.token_ids.size());
    if (block_ != nullptr) {
      entered_.set_value();
      block_->wait();
      block_.reset();
    }
    return true;
  }
  void OnFinish(const FinishInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    reason_ = info.reason;
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  FinishReason reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
  }
  int tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  int first_token_rank() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_token_rank_;
  }
  // The next OnDelta makes the returned future ready, then blocks until
  // `released` is.
  std::future<void> BlockOn(std::shared_future<void> released) {
    block_ = std::make_unique<std::shared_future<void>>(std::move(released));
    return entered_.get_future();
  }

 private:
  mutable std::mutex mu_;
  Order* order_;
  int tokens_ = 0;
  int first_token_rank_ = -1;
  bool finished_ = false;
  FinishReason reason_ = FinishReason::kError;
  std::unique_ptr<std::shared_future<void>> block_;
  std::promise<void> entered_;
};

class DeviceExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = kernels::MakeCpuBackend(1);
    model_ = runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend_.get()).value();
    tokenizer_ = runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec()).value();
  }

  // An engine whose work wakes `executor`; one sequence at a time, so a
  // backlog stays queued.
  std::unique_ptr<Engine> MakeEngine(DeviceExecutor& executor, int32_t max_num_seqs = 1) {
    runtime::EngineConfig c;
    c.block_size = 4;
    c.num_kv_blocks = 80;
    c.step_scheduler.max_num_seqs = max_num_seqs;
    c.step_scheduler.max_tokens_per_step = 128;
    c.step_scheduler.max_prefill_chunk = 128;
    c.on_work = executor.MakeWakeCallback();
    return Engine::Create(model_.get(), tokenizer_.get(), c).value();
  }

  // Prompts differ by `salt`, so the prefix cache never shortens one.
  static GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, int32_t salt = 0) {
    GenerateRequest r;
    for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(1 + (i * 7 + salt) % 250);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    return r;
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<runtime::Model> model_;
  std::unique_ptr<runtime::Tokenizer> tokenizer_;
};

TEST_F(DeviceExecutorTest, OneThreadServesEveryAttachedEngine) {
  DeviceExecutor executor("cpu");
  std::unique_ptr<Engine> a = MakeEngine(executor, 4), b = MakeEngine(executor, 4);
  executor.Attach(a.get(), {});
  executor.Attach(b.get(), {});
  std::vector<std::shared_ptr<Sink>> sinks;
  for (int i = 0; i < 6; ++i) {
    sinks.push_back(std::make_shared<Sink>());
    Engine& e = i % 2 ? *a : *b;
    ASSERT_TRUE(e.Submit(Request(5 + i, 4), sinks.back()).ok());
  }
  for (auto& s : sinks) {
    ASSERT_TRUE(cohost::testing::WaitFor([&] { return s->finished(); }, kWait));
    EXPECT_EQ(s->reason(), FinishReason::kLength);
  }
  // Detached, neither engine steps again and every count is settled.
  executor.Detach(a.get());
  executor.Detach(b.get());
  EXPECT_GT(a->Stats().num_steps, 0);
  EXPECT_GT(b->Stats().num_steps, 0);
  EXPECT_EQ(executor.num_steps(), a->Stats().num_steps + b->Stats().num_steps)
      << "every step of both engines ran on the executor";
}

TEST_F(DeviceExecutorTest, AQuietModelsFirstTokenGoesAheadOfAFloodsBacklog) {
  ExecutorOptions options;
  options.unmeasured_slice_tokens = 8;
  options.min_slice_tokens = 8;
  options.step_slice = std::chrono::nanoseconds(1);  // every step as small as the floor
  DeviceExecutor executor("cpu", options);
  std::unique_ptr<Engine> flood = MakeEngine(executor), quiet = MakeEngine(executor);
  // The flood's targets are already missed when its requests arrive; the
  // quiet model's can still be met.
  executor.Attach(flood.get(), DueIn(milliseconds(0)));
  executor.Attach(quiet.get(), DueIn(std::chrono::seconds(60)));
  Order order;
  // The flood's first request holds the executor in its first token while
  // the rest of the flood and then the quiet request queue up.
  std::promise<void> release;
  std::vector<std::shared_ptr<Sink>> backlog;
  backlog.push_back(std::make_shared<Sink>(&order));
  std::future<void> entered = backlog.back()->BlockOn(release.get_future().share());
  ASSERT_TRUE(flood->Submit(Request(64, 2), backlog.back()).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  for (int i = 0; i < 5; ++i) {
    backlog.push_back(std::make_shared<Sink>(&order));
    ASSERT_TRUE(flood->Submit(Request(64, 2, /*salt=*/i + 1), backlog.back()).ok());
  }
  auto urgent = std::make_shared<Sink>(&order);
  ASSERT_TRUE(quiet->Submit(Request(16, 2), urgent).ok());
  release.set_value();
  for (auto& s : backlog)
    ASSERT_TRUE(cohost::testing::WaitFor([&] { return s->finished(); }, kWait));
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return urgent->finished(); }, kWait));
  // Each backlog request needs 8 capped steps of prefill, the quiet one 2:
  // FIFO across models would have ranked it last.
  EXPECT_EQ(backlog[0]->first_token_rank(), 0);
  EXPECT_EQ(urgent->first_token_rank(), 1) << "the quiet model waited behind the flood's backlog";
  executor.Detach(flood.get());
  executor.Detach(quiet.get());
}

TEST_F(DeviceExecutorTest, StepsAreCappedOnlyWhileEnginesShareTheDevice) {
  ExecutorOptions options;
  options.unmeasured_slice_tokens = 8;
  options.min_slice_tokens = 8;
  options.step_slice = std::chrono::nanoseconds(1);
  DeviceExecutor executor("cpu", options);
  std::unique_ptr<Engine> a = MakeEngine(executor), b = MakeEngine(executor);

  // a's first tokens are due at once, so they are always late: its steps are
  // capped whenever it shares the device.
  executor.Attach(a.get(), DueIn(milliseconds(0)));
  auto alone = std::make_shared<Sink>();
  ASSERT_TRUE(a->Submit(Request(64, 1), alone).ok());
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return alone->finished(); }, kWait));
  // The stats are published at the end of the step the sink finished in.
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return a->Stats().num_steps >= 1; }, kWait));
  EXPECT_EQ(a->Stats().num_steps, 1) << "alone, a 64-token prompt is one step";

  // Attached while the executor may be between rounds: the next step of a is
  // capped all the same. b's first tokens are due in a minute, so on time
  // below even on a slow, loaded machine.
  executor.Attach(b.get(), DueIn(std::chrono::seconds(60)));
  auto shared = std::make_shared<Sink>();
  ASSERT_TRUE(a->Submit(Request(64, 1, /*salt=*/1), shared).ok());
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return shared->finished(); }, kWait));
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return a->Stats().num_steps >= 1 + 8; }, kWait));
  EXPECT_EQ(a->Stats().num_steps, 1 + 8) << "sharing, the same prompt takes 8 steps of 8";

  // b's first token can be on time and nobody else's is due: its prefill runs
  // whole (slicing it would only add steps to its TTFT).
  auto on_time = std::make_shared<Sink>();
  ASSERT_TRUE(b->Submit(Request(64, 1, /*salt=*/2), on_time).ok());
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return on_time->finished(); }, kWait));
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return b->Stats().num_steps >= 1; }, kWait));
  EXPECT_EQ(b->Stats().num_steps, 1) << "an on-time first token is not sliced";
  executor.Detach(a.get());
  executor.Detach(b.get());
}

TEST_F(DeviceExecutorTest, ATightTpotTargetIsSteppedMoreOften) {
  std::mutex mu;
  std::vector<std::string> stepped;  // the engines' names, in step order
  ExecutorOptions o;
  o.on_step = [&](const std::string&, const std::string& model, double) {
    std::lock_guard<std::mutex> lock(mu);
    stepped.push_back(model);
  };
  DeviceExecutor executor("cpu", o);
  std::unique_ptr<Engine> tight = MakeEngine(executor), loose = MakeEngine(executor),
                          blocker = MakeEngine(executor);
  // The executor is held inside a third engine's step while both are
  // attached, so that neither steps before the other is there.
  std::promise<void> release;
  auto held = std::make_shared<Sink>();
  std::future<void> entered = held->BlockOn(release.get_future().share());
  executor.Attach(blocker.get(), {});
  ASSERT_TRUE(blocker->Submit(Request(4, 1, /*salt=*/2), held).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  auto fast = std::make_shared<Sink>(), slow = std::make_shared<Sink>();
  ASSERT_TRUE(tight->Submit(Request(4, 24), fast).ok());
  ASSERT_TRUE(loose->Submit(Request(4, 24, /*salt=*/1), slow).ok());
  EngineTargets t;
  t.name = "tight";
  t.tpot_target = milliseconds(1);
  executor.Attach(tight.get(), t);
  t.name = "loose";
  t.tpot_target = std::chrono::seconds(30);
  executor.Attach(loose.get(), t);
  release.set_value();
  ASSERT_TRUE(
      cohost::testing::WaitFor([&] { return fast->finished() && slow->finished(); }, kWait));
  executor.Detach(tight.get());
  executor.Detach(loose.get());
  executor.Detach(blocker.get());

  // Each engine's first step serves its first token. After that the loose
  // engine's next token is due 30 s after its step, the tight one's 1 ms
  // after each of its own: the tight one decodes to the end first.
  std::lock_guard<std::mutex> lock(mu);
  stepped.erase(std::remove(stepped.begin(), stepped.end(), ""), stepped.end());  // the blocker
  ASSERT_EQ(stepped.size(), 48u);
  const auto first_loose_decode =
      std::find(std::find(stepped.begin(), stepped.end(), "loose") + 1, stepped.end(), "loose");
  EXPECT_EQ(std::count(stepped.begin(), first_loose_decode, "tight"), 24)
      << "the loose engine decoded before the tight one finished";
}

// Detach waits for the round in progress only: while another engine keeps
// the device busy, round after round, it returns once that round ends
// instead of waiting for a gap between rounds that never comes.
TEST_F(DeviceExecutorTest, DetachReturnsAfterTheRoundInProgressOnABusyDevice) {
  DeviceExecutor executor("cpu");
  std::unique_ptr<Engine> busy = MakeEngine(executor), idle = MakeEngine(executor);
  executor.Attach(busy.get(), {});
  executor.Attach(idle.get(), {});
  auto sink = std::make_shared<cohost::testing::SteppedSink>();
  ASSERT_TRUE(busy->Submit(Request(4, 50), sink).ok());
  ASSERT_TRUE(sink->WaitHeld(1));  // round 1 is held
  std::atomic<bool> detached{false};
  std::thread detacher([&] {
    executor.Detach(idle.get());
    detached = true;
  });
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return executor.detach_waiters() == 1; }, kWait));
  EXPECT_FALSE(detached) << "returned during the round";
  sink->LetOneGo();
  ASSERT_TRUE(sink->WaitHeld(2));  // round 2 has begun, and is held
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return detached.load(); }, std::chrono::seconds(10)))
      << "Detach waited past the round it began in";
  sink->Open();
  detacher.join();
  executor.Detach(busy.get());
}

TEST_F(DeviceExecutorTest, DetachWaitsForTheStepInProgress) {
  DeviceExecutor executor("cpu");
  std::unique_ptr<Engine> e = MakeEngine(executor);
  executor.Attach(e.get(), {});
  std::promise<void> release;
  auto sink = std::make_shared<Sink>();
  std::future<void> entered = sink->BlockOn(release.get_future().share());
  ASSERT_TRUE(e->Submit(Request(4, 3), sink).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  std::atomic<bool> detached{false};
  std::thread detacher([&] {
    executor.Detach(e.get());
    detached = true;
  });
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return executor.detach_waiters() == 1; }, kWait));
  EXPECT_FALSE(detached) << "returned while the engine's step was still running";
  release.set_value();
  detacher.join();
  EXPECT_TRUE(detached);
  const int64_t steps = e->Stats().num_steps;
  EXPECT_FALSE(sink->finished()) << "detached mid-request: nobody steps it any more";
  EXPECT_EQ(e->Stats().num_steps, steps);
  // The engine's owner ends what is left (as ServedModel does).
  e.reset();
  EXPECT_TRUE(sink->finished());
  EXPECT_EQ(sink->reason(), FinishReason::kCancelled);
}

// A cancellation on one engine takes effect at the device's next round,
// without a step of that engine: its memory is free while other engines'
// steps go on.
TEST_F(DeviceExecutorTest, ACancellationEndsAtTheNextRoundWithoutAStepOfItsEngine) {
  DeviceExecutor executor("cpu");
  std::unique_ptr<Engine> busy = MakeEngine(executor), other = MakeEngine(executor);
  auto cancelled = std::make_shared<Sink>();
  // The executor held after a step of the busy engine once the other's
  // request has its first token (and so its blocks), until this thread lets go.
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> held{false};
  // No step of the busy engine goes on before the other engine is attached:
  // attached alone (this thread descheduled between the two Attach calls, on
  // a loaded machine), it could finish its request first, and nothing would
  // ever hold the executor (one run in three hung so beside two busy loops).
  std::promise<void> attached;
  std::shared_future<void> both_attached = attached.get_future().share();
  EngineTargets busy_targets;
  busy_targets.on_step = [&](double, runtime::Clock::time_point) {
    both_attached.wait_for(kWait);
    if (cancelled->tokens() == 0 || held.exchange(true)) return;
    entered.set_value();
    released.wait();
  };
  std::atomic<int> other_steps{0};
  EngineTargets other_targets;
  other_targets.on_step = [&](double, runtime::Clock::time_point) { ++other_steps; };
  struct Release {
    std::promise<void>& p;
    bool done = false;
    void Now() {
      if (!done) p.set_value();
      done = true;
    }
    ~Release() { Now(); }
  } let_go{release};

  // Both queued before either is stepped: each then runs beside the other.
  auto busy_sink = std::make_shared<Sink>();
  ASSERT_TRUE(busy->Submit(Request(4, 200, 1), busy_sink).ok());
  absl::StatusOr<runtime::RequestId> id = other->Submit(Request(8, 200), cancelled);
  ASSERT_TRUE(id.ok()) << id.status();
  executor.Attach(busy.get(), busy_targets);
  executor.Attach(other.get(), other_targets);
  attached.set_value();
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);
  ASSERT_FALSE(cancelled->finished());
  const int steps = other_steps.load();
  other->Abort(*id);
  let_go.Now();
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return cancelled->finished(); }, kWait));
  EXPECT_EQ(cancelled->reason(), FinishReason::kCancelled);
  EXPECT_EQ(other_steps.load(), steps) << "ended by a step of its own engine";
  // The sink hears before the stats are published.
  EXPECT_TRUE(cohost::testing::WaitFor(
      [&] { return other->Stats().kv_blocks_free == other->Stats().kv_blocks_total; }, kWait));
  executor.Detach(busy.get());
  executor.Detach(other.get());
}

// A device's KV memory that grants nothing until opened; opening it wakes
// nobody, as memory coming back outside a step (another engine detached, an
// account released) does not.
class GatedBudget : public runtime::KvBudget {
 public:
  bool Acquire(int64_t, runtime::RequestId) override { return open_.load(); }
  void Release(int64_t) override {}
  void Open() { open_ = true; }

 private:
  std::atomic<bool> open_{false};
};

TEST_F(DeviceExecutorTest, AnEngineWaitingForMemoryDoesNotSpinTheExecutor) {
  DeviceExecutor executor("cpu");
  GatedBudget budget;
  const runtime::ModelConfig& mc = model_->config();
  const kernels::DType dtype = backend_->kv_dtype();
  constexpr int32_t kBlock = 4;
  const int64_t group_bytes =
      int64_t{runtime::KvCache::GroupBlocks(mc, dtype, kBlock, backend_->vm_granularity(), 0)} *
      static_cast<int64_t>(runtime::KvCache::BytesPerBlock(mc, dtype, kBlock));
  runtime::EngineConfig c;
  c.block_size = kBlock;
  c.kv_cache_bytes = 8 * group_bytes;
  c.kv_group_min_bytes = 0;
  c.kv_budget = &budget;
  c.on_work = executor.MakeWakeCallback();
  std::unique_ptr<Engine> e = Engine::Create(model_.get(), tokenizer_.get(), c).value();
  executor.Attach(e.get(), {});
  auto sink = std::make_shared<Sink>();
  ASSERT_TRUE(e->Submit(Request(6, 3), sink).ok());
  // Stepped, found no memory, and marked stalled: from here on every step is
  // a retry.
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return executor.num_steps() >= 3; }, kWait));
  const int64_t before = executor.num_steps();
  std::this_thread::sleep_for(milliseconds(500));
  const int64_t retries = executor.num_steps() - before;
  // Backing off to 64 ms between tries makes about 8 in 500 ms; spinning made
  // tens of thousands.
  EXPECT_LT(retries, 50) << "the executor spins on an engine that cannot get memory";
  EXPECT_EQ(sink->tokens(), 0);
  // Memory comes back with no Wake: the next retry finds it.
  budget.Open();
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return sink->finished(); }, kWait));
  EXPECT_EQ(sink->reason(), FinishReason::kLength);
  EXPECT_EQ(sink->tokens(), 3);
  executor.Detach(e.get());
}

}  // namespace
}  // namespace cohost::scheduler
