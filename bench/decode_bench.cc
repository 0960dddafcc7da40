// Decode-step and short-generation throughput on the default model (CPU).
// Run: build/bench/decode_bench [--benchmark_filter=...]; results in bench/RESULTS.md.

#include <cstdio>
#include <memory>

#include "bench/default_model.h"
#include "benchmark/benchmark.h"
#include "runtime/engine/engine.h"
#include "runtime/model/kv_cache.h"

namespace cohost::runtime {
namespace {

using Fixture = bench::DefaultModel;
Fixture* Shared() { return bench::SharedDefaultModel(); }

// One decode step (one new token) at context length state.range(0).
void BM_DecodeStep(benchmark::State& state) {
  Fixture* f = Shared();
  const int32_t ctx = static_cast<int32_t>(state.range(0));
  const int32_t bs = 16;
  const int32_t num_blocks = ctx / bs + 2;
  auto kv = KvCache::Create(f->backend.get(), f->model.config(), num_blocks, bs);
  if (!kv.ok()) return state.SkipWithError("kv cache");
  Batch b;
  const int32_t token = 42;
  FillSingleSequenceBatch(absl::MakeConstSpan(&token, 1), ctx - 1, num_blocks, bs, true, &b);
  std::vector<float> logits;
  for (auto _ : state) {
    absl::Status s = f->model.model->Forward(b, **kv, &logits);
    if (!s.ok()) return state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tok/s"] = benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeStep)->Arg(16)->Arg(128)->Arg(1024)->Unit(benchmark::kMillisecond);

// A 128-token greedy generation from a short prompt, end to end through the
// engine's step loop (one sequence: what `cohost run` does with one prompt).
void BM_Greedy128(benchmark::State& state) {
  Fixture* f = Shared();
  EngineConfig config;
  config.kv_cache_bytes = int64_t{64} << 20;
  std::unique_ptr<Engine> engine =
      Engine::Create(f->model.model.get(), f->model.tokenizer.get(), config).value();
  absl::StatusOr<std::vector<int32_t>> ids = f->model.tokenizer->Encode("Once upon a time");
  GenerateRequest request;
  request.prompt_ids = *ids;
  request.sampling.temperature = 0;
  request.sampling.max_tokens = 128;
  request.sampling.ignore_eos = true;
  struct Sink : TokenSink {
    bool OnDelta(const TokenDelta&) override { return true; }
    void OnFinish(const FinishInfo& info) override {
      decode_tps = info.timings.decode_tokens_per_second;
    }
    double decode_tps = 0;
  };
  double decode_tps = 0;
  for (auto _ : state) {
    auto sink = std::make_shared<Sink>();
    absl::StatusOr<RequestId> id = engine->Submit(request, sink);
    if (!id.ok()) return state.SkipWithError(std::string(id.status().message()).c_str());
    for (;;) {
      absl::StatusOr<bool> more = engine->Step();
      if (!more.ok()) return state.SkipWithError(std::string(more.status().message()).c_str());
      if (!*more) break;
    }
    decode_tps = sink->decode_tps;
  }
  state.counters["tok/s"] =
      benchmark::Counter(128.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["decode_tok/s"] = decode_tps;
}
BENCHMARK(BM_Greedy128)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Prefill throughput: one prompt of state.range(0) tokens in one step.
void BM_Prefill(benchmark::State& state) {
  Fixture* f = Shared();
  const int32_t n = static_cast<int32_t>(state.range(0));
  const int32_t bs = 16;
  const int32_t num_blocks = n / bs + 2;
  auto kv = KvCache::Create(f->backend.get(), f->model.config(), num_blocks, bs);
  if (!kv.ok()) return state.SkipWithError("kv cache");
  std::vector<int32_t> tokens;
  tokens.reserve(n);
  for (int32_t p = 0; p < n; ++p) tokens.push_back(100 + p % 1000);
  Batch b;
  FillSingleSequenceBatch(tokens, 0, num_blocks, bs, true, &b);
  std::vector<float> logits;
  for (auto _ : state) {
    absl::Status s = f->model.model->Forward(b, **kv, &logits);
    if (!s.ok()) return state.SkipWithError(std::string(s.message()).c_str());
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
