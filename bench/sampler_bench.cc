// One token sampled on the host from a vocabulary of logits, per sampling
// rule: what each sampled request costs a step on the CPU path, beside the
// forward pass. Logits are normal(0, 2) draws (flat: top-p keeps a large
// share), or the same with eight tokens far above (peaked, as a language
// model's are); the vocabulary is Llama 3's / Qwen2's size (152k) or
// SmolLM2's (49k).
// Run: build/bench/sampler_bench; results in bench/RESULTS.md.

#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/sampling/sampler.h"

namespace cohost::runtime {
namespace {

// normal(0, 2) draws; `peaked`: eight tokens 12 above them, as a language
// model's few likely next tokens stand above the rest.
std::vector<float> Logits(int64_t vocab, bool peaked) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 2.f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& l : logits) l = normal(rng);
  for (int64_t i = 0; peaked && i < 8; ++i) logits[static_cast<size_t>(i * 997 % vocab)] += 12.f;
  return logits;
}

void BM_Sample(benchmark::State& state, const SamplingParams& params) {
  const std::vector<float> logits = Logits(state.range(0), state.range(1) == 1);
  std::vector<float> work = logits;
  Sampler sampler(params, /*default_seed=*/1);
  for (auto _ : state) {
    state.PauseTiming();
    work = logits;  // Sample rewrites them
    state.ResumeTiming();
    benchmark::DoNotOptimize(sampler.Sample(absl::MakeSpan(work), {}, 0));
  }
}

SamplingParams Rule(int32_t top_k, float top_p) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

// vocabulary x logits (0 flat, 1 peaked).
BENCHMARK_CAPTURE(BM_Sample, TopK40, Rule(40, 1.f))
    ->ArgsProduct({{49152, 151936}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Sample, TopP09, Rule(0, 0.9f))
    ->ArgsProduct({{49152, 151936}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
