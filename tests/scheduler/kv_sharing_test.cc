// Several tiny models sharing one device's KV pool through the Router: a model
// holds more than an even share while the others are idle, gives it back when
// they need it, a model below its floor gets memory by preempting one above
// its floor, and under random concurrent load the pool's budget always holds.
// Outputs are compared with the same requests on a fixed-pool engine.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "runtime/engine/engine.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "scheduler/router.h"
#include "tests/support/collecting_sink.h"
#include "tests/support/gated_sink.h"
#include "tests/support/requests.h"
#include "tests/support/tiny_model.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::FinishInfo;
using runtime::FinishReason;
constexpr auto kWait = std::chrono::seconds(120);

using Collect = cohost::testing::CollectingSink;

// A Collect whose deltas wait on `gate` (on the engine's thread: its
// device's executor, for every model there) until the test opens it.
class GatedCollect : public Collect {
 public:
  explicit GatedCollect(std::shared_ptr<cohost::testing::Gate> gate) : gate_(std::move(gate)) {}
  bool OnDelta(const runtime::TokenDelta& d) override {
    const bool more = Collect::OnDelta(d);
    gate_->Enter();
    return more;
  }

 private:
  std::shared_ptr<cohost::testing::Gate> gate_;
};

runtime::GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, uint32_t seed) {
  return cohost::testing::RandomGreedyRequest(prompt_len, max_tokens, seed);
}

class KvSharingTest : public ::testing::Test {
 protected:
  static constexpr int32_t kBlock = 4;

  void SetUp() override {
    backend_ = kernels::MakeCpuBackend(1);
    const runtime::ModelConfig c = runtime::testing::MakeTinyModelFile().config;
    block_bytes_ =
        static_cast<int64_t>(runtime::KvCache::BytesPerBlock(c, kernels::DType::kF32, kBlock));
  }
  void TearDown() override { router_.reset(); }

  // A device pool of `blocks` blocks' worth, groups of `group_blocks`.
  void MakeRouter(int64_t blocks, int64_t group_blocks) {
    runtime::EngineConfig c;
    c.block_size = kBlock;
    c.kv_cache_bytes = blocks * block_bytes_;
    c.kv_group_min_bytes = group_blocks * block_bytes_;
    c.step_scheduler.max_num_seqs = 8;
    c.step_scheduler.max_tokens_per_step = 64;
    c.step_scheduler.max_prefill_chunk = 64;
    router_ = std::make_unique<Router>(backend_.get(), c, AdmissionLimits{});
  }

  std::shared_ptr<ServedModel> Add(const std::string& name, ModelSpec spec = {}) {
    runtime::LoadedModel loaded;
    loaded.tokenizer =
        runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec()).value();
    loaded.model =
        runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend_.get()).value();
    spec.name = name;
    spec.path = "tiny:" + name;
    EXPECT_TRUE(router_->AddLoadedModel(spec, std::move(loaded)).ok());
    return router_->Find(name).value();
  }

  // What a fixed pool computes for the request: the reference output.
  std::vector<int32_t> Reference(const runtime::GenerateRequest& r) {
    runtime::LoadedModel m;
    m.tokenizer = runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec()).value();
    m.model = runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend_.get()).value();
    runtime::EngineConfig c;
    c.block_size = kBlock;
    c.num_kv_blocks = 128;
    auto e = runtime::Engine::Create(m.model.get(), m.tokenizer.get(), c).value();
    auto sink = std::make_shared<Collect>();
    EXPECT_TRUE(e->Submit(r, sink).ok());
    while (e->Step().value()) {
    }
    return sink->ids();
  }

  std::shared_ptr<Collect> Submit(const std::shared_ptr<ServedModel>& m,
                                  const runtime::GenerateRequest& r,
                                  std::shared_ptr<Collect> sink = std::make_shared<Collect>()) {
    absl::StatusOr<runtime::RequestId> id = router_->Submit(m, r, sink);
    EXPECT_TRUE(id.ok()) << id.status();
    return sink;
  }

  // `work` submitted so that it runs together: the first request's first
  // token holds the executor until the rest are queued. (A tiny model's
  // request can otherwise end before the next arrives, and the work then
  // runs one request at a time, needing a fraction of the memory.)
  std::vector<std::shared_ptr<Collect>> SubmitTogether(
      const std::shared_ptr<ServedModel>& m, const std::vector<runtime::GenerateRequest>& work) {
    auto gate = std::make_shared<cohost::testing::Gate>();
    std::vector<std::shared_ptr<Collect>> sinks = {
        Submit(m, work[0], std::make_shared<GatedCollect>(gate))};
    EXPECT_TRUE(gate->WaitEntered());
    for (size_t i = 1; i < work.size(); ++i) sinks.push_back(Submit(m, work[i]));
    gate->Open();
    return sinks;
  }

  void RunRandomLoad(const std::vector<std::shared_ptr<ServedModel>>& models, int64_t budget,
                     int32_t min_prompt, int32_t max_prompt, int32_t max_tokens);

  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Router> router_;
  int64_t block_bytes_ = 0;
};

// Tenants share a device by tokens across its models: every engine there
// counts tenants' tokens in the device's one FairShare (fair_share_test.cc
// shows what sharing it does to the split).
TEST_F(KvSharingTest, ModelsOnADeviceCountTenantsTokensTogether) {
  MakeRouter(/*blocks=*/256, /*group_blocks=*/16);
  std::shared_ptr<ServedModel> a = Add("a"), b = Add("b");
  ASSERT_NE(a->device().fair_share, nullptr);
  EXPECT_EQ(a->engine_config().fair_share, a->device().fair_share.get());
  EXPECT_EQ(b->engine_config().fair_share, a->device().fair_share.get());
  // Both models serve from it: requests of two tenants on each finish.
  std::vector<std::shared_ptr<Collect>> sinks;
  for (uint32_t i = 0; i < 8; ++i) {
    runtime::GenerateRequest r = Request(24, 8, i);
    r.tenant = i % 2 == 0 ? "t0" : "t1";
    sinks.push_back(Submit(i < 4 ? a : b, r));
  }
  for (const std::shared_ptr<Collect>& sink : sinks) {
    ASSERT_TRUE(sink->Wait(kWait));
    EXPECT_EQ(sink->ids().size(), 8u);
  }
  EXPECT_EQ(a->device().fair_share->num_active(), 0) << "every tenant left when its work did";
}

TEST_F(KvSharingTest, AnIdleModelsShareGoesWhereTheWorkIsAndComesBack) {
  MakeRouter(/*blocks=*/256, /*group_blocks=*/16);  // 16 groups of 16 blocks
  std::shared_ptr<ServedModel> a = Add("a"), b = Add("b");
  const int64_t budget = 256 * block_bytes_;
  EXPECT_EQ(a->kv_bytes_held(), 0) << "memory is taken when work needs it";

  // Six sequences of up to 160 tokens need 6 x 40 = 240 blocks: far more than
  // an even share, and a holds it while b is idle.
  std::vector<runtime::GenerateRequest> work;
  for (uint32_t i = 0; i < 6; ++i) work.push_back(Request(100, 60, 10 + i));
  std::vector<std::shared_ptr<Collect>> sinks = SubmitTogether(a, work);
  for (auto& s : sinks) ASSERT_TRUE(s->Wait());
  EXPECT_GT(a->kv_bytes_held(), budget / 2);
  for (size_t i = 0; i < work.size(); ++i) {
    EXPECT_EQ(sinks[i]->ids(), Reference(work[i])) << i;
  }

  // Now b needs the same: a is idle, its blocks only cached prefixes, so its
  // groups come back without preempting anything.
  sinks = SubmitTogether(b, work);
  for (auto& s : sinks) ASSERT_TRUE(s->Wait());
  EXPECT_GT(b->kv_bytes_held(), budget / 2);
  EXPECT_LT(a->kv_bytes_held(), budget / 2);
  EXPECT_EQ(a->Stats().num_preemptions, 0);
  for (size_t i = 0; i < work.size(); ++i) {
    EXPECT_EQ(sinks[i]->ids(), Reference(work[i])) << i;
    EXPECT_EQ(sinks[i]->info().reason, FinishReason::kLength);
  }
  EXPECT_LE(a->kv_bytes_held() + b->kv_bytes_held(), budget);
}

TEST_F(KvSharingTest, AModelBelowItsFloorPreemptsOneAboveItsFloor) {
  MakeRouter(/*blocks=*/256, /*group_blocks=*/16);
  ModelSpec half;  // a and c may each hold half the pool, with no floor
  half.kv_cap_bytes = 128 * block_bytes_;
  ModelSpec floor;  // b is guaranteed 64 blocks (4 groups)
  floor.kv_floor_bytes = 64 * block_bytes_;
  floor.kv_cap_bytes = 64 * block_bytes_;
  std::shared_ptr<ServedModel> a = Add("a", half), c = Add("c", half);
  std::shared_ptr<ServedModel> b = Add("b", floor);
  ASSERT_NE(b, nullptr);

  // a and c fill the whole pool with long-running sequences.
  std::vector<std::pair<runtime::GenerateRequest, std::shared_ptr<Collect>>> long_work;
  for (uint32_t i = 0; i < 8; ++i) {
    runtime::GenerateRequest r = Request(40, 200, 30 + i);
    long_work.emplace_back(r, Submit(i % 2 ? a : c, r));
  }
  ASSERT_TRUE(cohost::testing::WaitFor(
      [&] { return a->kv_bytes_held() + c->kv_bytes_held() == 256 * block_bytes_; }, kWait))
      << "a and c fill the pool";

  // b holds nothing, below its floor: it is served now, with memory a or c
  // gives up by preempting the sequences that held it.
  const runtime::GenerateRequest urgent = Request(60, 20, 99);
  std::shared_ptr<Collect> quick = Submit(b, urgent);
  ASSERT_TRUE(quick->Wait());
  EXPECT_EQ(quick->ids(), Reference(urgent));
  EXPECT_GT(b->kv_bytes_held(), 0);
  int unfinished = 0;
  for (auto& [r, s] : long_work) unfinished += s->finished() ? 0 : 1;
  EXPECT_GT(unfinished, 0) << "b did not wait for the others' work to end";
  // The pool was full with a's and c's running work, so b's share could only
  // come from their preempted sequences.

  // The preempted sequences are recomputed: their output is as if alone.
  for (auto& [r, s] : long_work) {
    ASSERT_TRUE(s->Wait());
    EXPECT_EQ(s->ids(), Reference(r));
  }
  EXPECT_LE(a->kv_bytes_held() + b->kv_bytes_held() + c->kv_bytes_held(), 256 * block_bytes_);
}

// Two models, no floors, each may hold the whole pool, and each request needs
// most of it: both grow until the pool is full, each holding half of what it
// needs. The older request wins (its model preempts the younger one's
// sequence), finishes, and the younger then has the memory.
TEST_F(KvSharingTest, TwoModelsEachNeedingMostOfThePoolBothFinish) {
  MakeRouter(/*blocks=*/64, /*group_blocks=*/8);
  std::shared_ptr<ServedModel> a = Add("a"), b = Add("b");
  // 156 tokens: 39 of the pool's 63 usable blocks each.
  const runtime::GenerateRequest ra = Request(100, 56, 1), rb = Request(100, 56, 2);
  // a's first token holds the executor until b's request is queued: both
  // then hold memory at once. (Otherwise, on a loaded machine, a could run to
  // its end before b arrived, and nobody would be preempted.)
  auto gate = std::make_shared<cohost::testing::Gate>();
  std::shared_ptr<Collect> sa = Submit(a, ra, std::make_shared<GatedCollect>(gate));
  EXPECT_TRUE(gate->WaitEntered());
  std::shared_ptr<Collect> sb = Submit(b, rb);
  gate->Open();  // whatever happened: a shut gate would hold the engine for good
  ASSERT_TRUE(sa->Wait(kWait)) << "a holds " << a->kv_bytes_held() / block_bytes_ << " blocks, b "
                               << b->kv_bytes_held() / block_bytes_;
  ASSERT_TRUE(sb->Wait(kWait)) << "a holds " << a->kv_bytes_held() / block_bytes_ << " blocks, b "
                               << b->kv_bytes_held() / block_bytes_;
  EXPECT_EQ(sa->ids(), Reference(ra));
  EXPECT_EQ(sb->ids(), Reference(rb));
  EXPECT_EQ(sa->info().reason, FinishReason::kLength);
  EXPECT_EQ(sb->info().reason, FinishReason::kLength);
  // The count /metrics shows survives the engines: an eviction ends an
  // engine, not its model's count.
  const int64_t preempted = a->Stats().num_preemptions + b->Stats().num_preemptions;
  EXPECT_GT(preempted, 0) << "the younger request's sequence was preempted";
  ASSERT_TRUE(a->Evict("test"));
  ASSERT_TRUE(b->Evict("test"));
  EXPECT_EQ(a->Stats().num_preemptions + b->Stats().num_preemptions, preempted);
}

// A model that has gone idle gives back all of its memory, the group holding
// its null block too: another model may then use the whole pool, as it was
// promised at Join.
TEST_F(KvSharingTest, AnIdleModelGivesBackEveryGroup) {
  MakeRouter(/*blocks=*/64, /*group_blocks=*/8);
  std::shared_ptr<ServedModel> a = Add("a"), b = Add("b");
  const runtime::GenerateRequest small = Request(8, 4, 3);
  std::shared_ptr<Collect> sb = Submit(b, small);
  ASSERT_TRUE(sb->Wait(kWait));
  EXPECT_GT(b->kv_bytes_held(), 0);
  // 250 tokens: all 63 usable blocks of the pool.
  const runtime::GenerateRequest big = Request(200, 50, 4);
  std::shared_ptr<Collect> sa = Submit(a, big);
  ASSERT_TRUE(sa->Wait(kWait)) << "a holds " << a->kv_bytes_held() / block_bytes_ << " blocks, b "
                               << b->kv_bytes_held() / block_bytes_;
  EXPECT_EQ(sa->ids(), Reference(big));
  EXPECT_EQ(b->kv_bytes_held(), 0);
  EXPECT_EQ(b->Stats().num_preemptions, 0) << "b was idle: nothing to preempt";
  // b still serves: it takes its memory back.
  sb = Submit(b, small);
  ASSERT_TRUE(sb->Wait(kWait));
  EXPECT_EQ(sb->ids(), Reference(small));
}

// Three clients send random requests to random models at once. The pool's
// budget always holds, and every request finishes as it would alone.
void KvSharingTest::RunRandomLoad(const std::vector<std::shared_ptr<ServedModel>>& models,
                                  int64_t budget, int32_t min_prompt, int32_t max_prompt,
                                  int32_t max_tokens) {
  std::atomic<bool> done{false};
  std::atomic<int64_t> worst{0};
  // The pool's own count, read under its lock: a sum of the models' reads
  // at different moments could count a group moving between them twice.
  const std::shared_ptr<KvPool> pool = models[0]->device().kv_pool;
  std::thread watcher([&] {
    while (!done) {
      worst = std::max(worst.load(), pool->used());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::mutex mu;
  std::vector<std::pair<runtime::GenerateRequest, std::shared_ptr<Collect>>> all;
  std::vector<std::thread> clients;
  for (uint32_t t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int i = 0; i < 12; ++i) {
        runtime::GenerateRequest r =
            Request(min_prompt + static_cast<int32_t>(rng() % (max_prompt - min_prompt + 1)),
                    1 + static_cast<int32_t>(rng() % max_tokens), static_cast<uint32_t>(rng()));
        std::shared_ptr<Collect> sink = Submit(models[rng() % models.size()], r);
        std::lock_guard<std::mutex> lock(mu);
        all.emplace_back(std::move(r), std::move(sink));
      }
    });
  }
  for (auto& c : clients) c.join();
  bool finished = true;
  for (auto& [r, s] : all) finished = finished && s->Wait();  // no more waits after one
  done = true;
  watcher.join();
  ASSERT_TRUE(finished) << "a request never finished";
  EXPECT_LE(worst.load(), budget);
  for (auto& [r, s] : all) {
    EXPECT_EQ(s->info().reason, FinishReason::kLength);
    EXPECT_EQ(s->ids(), Reference(r));
  }
}

TEST_F(KvSharingTest, RandomConcurrentLoadKeepsTheBudgetAndFinishesEverything) {
  MakeRouter(/*blocks=*/192, /*group_blocks=*/16);
  ModelSpec with_floor;
  with_floor.kv_floor_bytes = 32 * block_bytes_;
  with_floor.kv_cap_bytes = 96 * block_bytes_;
  ModelSpec plain;
  plain.kv_cap_bytes = 96 * block_bytes_;
  RunRandomLoad({Add("a", with_floor), Add("b", plain), Add("c", plain)}, 192 * block_bytes_,
                /*min_prompt=*/1, /*max_prompt=*/120, /*max_tokens=*/60);
}

// The defaults: no floors, every model may take the whole pool, and a request
// may need most of it. Models that each hold part of what their requests
// need must not wait for each other (the older work wins, kv_budget.h).
TEST_F(KvSharingTest, RandomLoadWithNoFloorsAndWholePoolCapsFinishesEverything) {
  MakeRouter(/*blocks=*/64, /*group_blocks=*/8);
  RunRandomLoad({Add("a"), Add("b"), Add("c")}, 64 * block_bytes_, /*min_prompt=*/100,
                /*max_prompt=*/200, /*max_tokens=*/50);
}

}  // namespace
}  // namespace cohost::scheduler
