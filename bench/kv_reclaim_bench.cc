// How an engine on a shared KV pool gives memory back, and what its prefix
// cache keeps meanwhile, under bursty churn (CPU, the default model). Requests
// are kept in flight, N of them (8 unless told) for 100 steps, then N / 4 for
// 100 steps, and so on; each is a shared 128-token system prompt (one of four)
// and a random question, answering a random length. Every A steps (10 unless
// told; 0: never) a neighbour on the same device asks for one group, without letting the engine
// preempt, and holds what it got for 40 steps; memory the engine gives back
// while an ask is pending goes to the neighbour. Every count here is
// deterministic (greedy, fixed lengths): no timing is measured.
//
// Run: build/bench/kv_reclaim_bench [steps [N [A]]]; results in bench/RESULTS.md.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "bench/default_model.h"
#include "runtime/engine/engine.h"
#include "runtime/model/kv_cache.h"

namespace cohost::runtime {
namespace {

constexpr int32_t kHoldSteps = 40;
constexpr int32_t kPhaseSteps = 100;
constexpr int32_t kBlock = 16;

// The device's budget as one engine and one neighbour share it.
class SharedBudget : public KvBudget {
 public:
  explicit SharedBudget(int64_t limit) : limit_(limit) {}
  bool Acquire(int64_t bytes, RequestId /*oldest*/) override {
    if (engine_ + neighbour_ + bytes > limit_) return false;
    engine_ += bytes;
    return true;
  }
  // What the engine gives back goes to the neighbour while it wants some.
  void Release(int64_t bytes) override {
    engine_ -= bytes;
    const int64_t to_neighbour = std::min(bytes, wanted_);
    wanted_ -= to_neighbour;
    neighbour_ += to_neighbour;
  }
  // The neighbour's ask: `bytes` more, met by the engine's Releases.
  void Want(int64_t bytes) { wanted_ += bytes; }
  void NeighbourReturns(int64_t bytes) { neighbour_ -= bytes; }
  int64_t wanted() const { return wanted_; }
  int64_t engine() const { return engine_; }

 private:
  int64_t limit_;
  int64_t engine_ = 0, neighbour_ = 0, wanted_ = 0;
};

struct CountingSink : TokenSink {
  explicit CountingSink(int32_t* in_flight) : in_flight(in_flight) {}
  bool OnDelta(const TokenDelta&) override { return true; }
  void OnFinish(const FinishInfo&) override { --*in_flight; }
  int32_t* in_flight;
};

GenerateRequest NextRequest(std::mt19937& rng) {
  GenerateRequest r;
  const int32_t system = static_cast<int32_t>(rng() % 4);
  for (int32_t i = 0; i < 128; ++i) r.prompt_ids.push_back(200 + system * 997 + i * 13 % 4000);
  const int32_t question = 16 + static_cast<int32_t>(rng() % 177);
  for (int32_t i = 0; i < question; ++i) {
    r.prompt_ids.push_back(100 + static_cast<int32_t>(rng() % 20000));
  }
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 8 + static_cast<int32_t>(rng() % 89);
  r.sampling.ignore_eos = true;
  return r;
}

int Run(int32_t steps, int32_t max_in_flight, int32_t ask_every) {
  bench::DefaultModel* f = bench::SharedDefaultModel();
  Model* model = f->model.model.get();
  const ModelConfig& mc = model->config();
  const kernels::DType dtype = model->backend()->kv_dtype();
  const auto block_bytes = static_cast<int64_t>(KvCache::BytesPerBlock(mc, dtype, kBlock));
  // The pool: room for 3,072 tokens, in groups of about 256 tokens.
  const int64_t pool = 3072 / kBlock * block_bytes;
  const int64_t group_min = 256 / kBlock * block_bytes;
  const int64_t group =
      int64_t{KvCache::GroupBlocks(mc, dtype, kBlock, model->backend()->vm_granularity(),
                                   static_cast<size_t>(group_min))} *
      block_bytes;
  SharedBudget budget(pool);
  EngineConfig c;
  c.block_size = kBlock;
  c.kv_cache_bytes = pool;
  c.kv_group_min_bytes = group_min;
  c.kv_budget = &budget;
  c.step_scheduler.max_num_seqs = max_in_flight;
  c.step_scheduler.max_tokens_per_step = 512;
  c.step_scheduler.max_prefill_chunk = 512;
  std::unique_ptr<Engine> e = Engine::Create(model, f->model.tokenizer.get(), c).value();

  std::mt19937 rng(20261205);
  int32_t in_flight = 0, finished = 0, submitted = 0;
  auto sink = std::make_shared<CountingSink>(&in_flight);
  std::deque<int32_t> returns;  // steps at which the neighbour gives a group back
  int32_t asks = 0, at_once = 0, satisfied_later = 0;
  int64_t wait_steps = 0;
  int32_t pending_since = -1;
  for (int32_t step = 0; step < steps; ++step) {
    const bool busy = step / kPhaseSteps % 2 == 0;
    while (in_flight < (busy ? max_in_flight : std::max(1, max_in_flight / 4))) {
      ++in_flight;
      ++submitted;
      e->Submit(NextRequest(rng), sink).value();
    }
    const int32_t before = in_flight;
    e->Step().value();
    finished += before - in_flight;
    if (pending_since >= 0 && budget.wanted() == 0) {
      ++satisfied_later;
      wait_steps += step - pending_since;
      returns.push_back(step + kHoldSteps);
      pending_since = -1;
    }
    while (!returns.empty() && returns.front() <= step) {
      budget.NeighbourReturns(group);
      returns.pop_front();
    }
    if (ask_every == 0 || step % ask_every != 0) continue;
    if (pending_since >= 0) {
      // Still waiting: ask again, as the pool does.
      e->ReclaimKv(budget.wanted(), budget.wanted(), kPreemptNever);
      continue;
    }
    ++asks;
    budget.Want(group);
    e->ReclaimKv(group, group, kPreemptNever);
    if (budget.wanted() == 0) {
      ++at_once;
      returns.push_back(step + kHoldSteps);
    } else {
      pending_since = step;
    }
  }
  const EngineStats s = e->Stats();
  std::printf("pool %lld bytes (%lld tokens), groups of %lld bytes (%lld tokens)\n",
              static_cast<long long>(pool), static_cast<long long>(pool / block_bytes) * kBlock,
              static_cast<long long>(group), static_cast<long long>(group / block_bytes) * kBlock);
  std::printf("steps %d, %d then %d in flight, requests submitted %d, finished %d\n", steps,
              max_in_flight, std::max(1, max_in_flight / 4), submitted, finished);
  std::printf("asks %d: given at once %d, later %d (mean wait %.1f steps), never %d\n", asks,
              at_once, satisfied_later,
              satisfied_later > 0 ? static_cast<double>(wait_steps) / satisfied_later : 0.0,
              asks - at_once - satisfied_later);
  std::printf("prefix cache: %lld of %lld blocks hit (%.1f%%)\n",
              static_cast<long long>(s.prefix_cache_hits),
              static_cast<long long>(s.prefix_cache_queries),
              s.prefix_cache_queries > 0 ? 100.0 * static_cast<double>(s.prefix_cache_hits) /
                                               static_cast<double>(s.prefix_cache_queries)
                                         : 0.0);
  std::printf("engine preemptions %lld, engine holds %lld bytes at the end\n",
              static_cast<long long>(s.num_preemptions), static_cast<long long>(budget.engine()));
  return 0;
}

}  // namespace
}  // namespace cohost::runtime

int main(int argc, char** argv) {
  const int32_t steps = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int32_t in_flight = argc > 2 ? std::atoi(argv[2]) : 8;
  const int32_t ask_every = argc > 3 ? std::atoi(argv[3]) : 10;
  if (steps < 1 || in_flight < 1 || ask_every < 0) {
    std::fprintf(stderr, "usage: kv_reclaim_bench [steps >= 1 [N >= 1 [A >= 0]]]\n");
    return 2;
  }
  return cohost::runtime::Run(steps, in_flight, ask_every);
}
