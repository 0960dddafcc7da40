// Continuous-batching throughput on the default model (CPU): aggregate decode
// tokens per second at 1, 4, 16 and 64 concurrent sequences, and prefill tokens
// per second. Run: build/bench/engine_bench; results in bench/RESULTS.md.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>

#include "bench/default_model.h"
#include "benchmark/benchmark.h"
#include "runtime/engine/engine.h"

namespace cohost::runtime {
namespace {

using Fixture = bench::DefaultModel;
Fixture* Shared() { return bench::SharedDefaultModel(); }

struct NullSink : TokenSink {
  bool OnDelta(const TokenDelta&) override { return true; }
  void OnFinish(const FinishInfo&) override {}
};

std::unique_ptr<Engine> MakeEngine(Fixture* f) {
  EngineConfig c;
  c.kv_cache_bytes = int64_t{512} << 20;
  c.step_scheduler.max_num_seqs = 64;
  c.step_scheduler.max_tokens_per_step = 2048;
  c.step_scheduler.max_prefill_chunk = 2048;
  return Engine::Create(f->model.model.get(), f->model.tokenizer.get(), c).value();
}

GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, int32_t salt) {
  GenerateRequest r;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(100 + (i * 7 + salt * 13) % 5000);
  r.sampling.temperature = 0;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

// range(0) sequences with 16-token prompts decode 32 tokens each; the timed
// part is the decode steps only (the first step prefills all prompts).
void BM_BatchedDecode(benchmark::State& state) {
  Fixture* f = Shared();
  const int32_t n = static_cast<int32_t>(state.range(0));
  constexpr int32_t kDecode = 32;
  int64_t tokens = 0;
  for (auto _ : state) {
    std::unique_ptr<Engine> e = MakeEngine(f);
    auto sink = std::make_shared<NullSink>();
    for (int32_t i = 0; i < n; ++i) e->Submit(Request(16, kDecode, i), sink).value();
    e->Step().value();  // prefill + first token of every sequence
    const auto t0 = std::chrono::steady_clock::now();
    while (e->Step().value()) {
    }
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    tokens += static_cast<int64_t>(n) * (kDecode - 1);
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BatchedDecode)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Arg(64)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// Prefill of range(0) prompts of 256 tokens, one output token each.
void BM_Prefill(benchmark::State& state) {
  Fixture* f = Shared();
  const int32_t n = static_cast<int32_t>(state.range(0));
  int64_t tokens = 0;
  for (auto _ : state) {
    std::unique_ptr<Engine> e = MakeEngine(f);
    auto sink = std::make_shared<NullSink>();
    for (int32_t i = 0; i < n; ++i) e->Submit(Request(256, 1, i), sink).value();
    while (e->Step().value()) {
    }
    tokens += static_cast<int64_t>(n) * 256;
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->Iterations(2);

// Time to first token on an idle engine driven by its own loop thread, as the
// server drives it: Submit() of a 16-token prompt -> the first delta at the
// sink. The baseline for what the gRPC server adds (bench/RESULTS.md).
void BM_EngineFirstToken(benchmark::State& state) {
  Fixture* f = Shared();
  static std::unique_ptr<Engine> e = [f] {
    std::unique_ptr<Engine> engine = MakeEngine(f);
    engine->Start();
    return engine;
  }();
  struct FirstTokenSink : TokenSink {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::chrono::steady_clock::time_point first;
    bool OnDelta(const TokenDelta&) override {
      std::lock_guard<std::mutex> lock(mu);
      if (first == std::chrono::steady_clock::time_point())
        first = std::chrono::steady_clock::now();
      return true;
    }
    void OnFinish(const FinishInfo&) override {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      cv.notify_all();
    }
  };
  int32_t i = 0;
  for (auto _ : state) {
    auto sink = std::make_shared<FirstTokenSink>();
    const auto t0 = std::chrono::steady_clock::now();
    e->Submit(Request(16, 1, i++), sink).value();
    std::unique_lock<std::mutex> lock(sink->mu);
    sink->cv.wait(lock, [&] { return sink->done; });
    state.SetIterationTime(std::chrono::duration<double>(sink->first - t0).count());
  }
}
// One submit per repetition; the median is what bench/RESULTS.md compares.
BENCHMARK(BM_EngineFirstToken)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(30)
    ->ReportAggregatesOnly(true);

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
