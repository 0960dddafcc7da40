// The quantized dot products, each table on this CPU: one weight matrix of
// SmolLM2-135M's MLP shape (1536 x 576) against one activation row, as a
// decode step's matrix-vector product sees it. Reported as weight bytes read
// per second; compare tables by their ratio within one run.

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "cohost/kernels/dtype.h"
#include "cohost/kernels/quant.h"
#include "kernels/cpu/quant/cpu_features.h"
#include "kernels/cpu/quant/quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

constexpr int64_t kRows = 1536, kCols = 576, kBlocks = kCols / kQuantBlock;

template <typename Block>
std::vector<Block> Weights() {
  std::mt19937 rng(1);
  std::vector<Block> w(kRows * kBlocks);
  for (Block& b : w) {
    for (auto& q : b.qs) q = static_cast<std::remove_reference_t<decltype(q)>>(rng());
    b.d = F32ToF16(0.01f);
  }
  return w;
}

std::vector<BlockQ8A> Activations(const QuantKernels& k) {
  std::mt19937 rng(2);
  std::normal_distribution<float> n;
  std::vector<float> x(kCols);
  for (float& v : x) v = n(rng);
  std::vector<BlockQ8A> a(kBlocks);
  k.quantize_q8a(x.data(), kCols, a.data());
  return a;
}

const QuantKernels* Table(int64_t i) { return i == 0 ? &ScalarQuantKernels() : Avx2QuantKernels(); }

template <typename Block, float (*QuantKernels::*Dot)(const Block*, const BlockQ8A*, int64_t)>
void BM_Dot(benchmark::State& state) {
  const QuantKernels* k = Table(state.range(0));
  if (k == nullptr) {
    state.SkipWithError("this CPU cannot run the table");
    return;
  }
  const std::vector<Block> w = Weights<Block>();
  const std::vector<BlockQ8A> a = Activations(*k);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r)
      out[r] = (k->*Dot)(w.data() + r * kBlocks, a.data(), kBlocks);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(k->name);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size() * sizeof(Block)));
}

BENCHMARK(BM_Dot<BlockQ8_0, &QuantKernels::dot_q8_0>)->Name("dot_q8_0")->Arg(0)->Arg(1);
BENCHMARK(BM_Dot<BlockQ4_0, &QuantKernels::dot_q4_0>)->Name("dot_q4_0")->Arg(0)->Arg(1);
BENCHMARK(BM_Dot<BlockQ4_1, &QuantKernels::dot_q4_1>)->Name("dot_q4_1")->Arg(0)->Arg(1);

}  // namespace
}  // namespace cohost::kernels::cpu

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto& f = cohost::kernels::cpu::HostCpuFeatures();
  benchmark::AddCustomContext("cpu", f.brand);
  benchmark::AddCustomContext("cpu_features", f.Summary());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
