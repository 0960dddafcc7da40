// Paged attention on the CPU: range(0) sequences, each range(2) new tokens
// (1: a decode step; hundreds: a prefill) after range(1) cached ones, over the default model's 30
// layers (9 query heads, 3 KV heads, head_dim 64, fp16 pages of 16 rows,
// scattered), with the layers' pages in separate memory as the engine keeps
// them. Between steps a 96 MB buffer is read, as a step's weights would be,
// so that the pages come from memory, not from the cache the last step
// left. Reported as query rows per second (tokens x heads x layers) and as
// the step's attention time. Run: build/bench/attention_bench (two threads);
// COHOST_CPU_KERNELS=avx2 holds it to the AVX2 rows where the CPU has more.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/paged_kv.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"

namespace cohost::kernels::cpu {
namespace {

constexpr int32_t kLayers = 30, kHeads = 9, kKvHeads = 3, kHeadDim = 64, kBlockSize = 16;

void BM_Attention(benchmark::State& state) {
  const int32_t seqs = static_cast<int32_t>(state.range(0));
  const int32_t cached = static_cast<int32_t>(state.range(1));
  const int32_t fresh = static_cast<int32_t>(state.range(2));
  const int32_t ctx = cached + fresh;
  const int32_t blocks_per_seq = (ctx + kBlockSize - 1) / kBlockSize;
  const int32_t num_blocks = seqs * blocks_per_seq;
  const size_t layer_elems = static_cast<size_t>(num_blocks) * kBlockSize * kKvHeads * kHeadDim;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<std::vector<uint16_t>> k(kLayers), v(kLayers);
  for (int32_t l = 0; l < kLayers; ++l) {
    k[l].resize(layer_elems);
    v[l].resize(layer_elems);
    for (size_t i = 0; i < layer_elems; ++i) {
      k[l][i] = F32ToF16(normal(rng));
      v[l][i] = F32ToF16(normal(rng));
    }
  }
  std::vector<int32_t> pages(num_blocks);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  std::vector<int32_t> seq_starts(seqs + 1), context_lens(seqs, ctx), positions;
  for (int32_t s = 0; s <= seqs; ++s) seq_starts[s] = s * fresh;
  for (int32_t s = 0; s < seqs; ++s) {
    for (int32_t i = 0; i < fresh; ++i) positions.push_back(cached + i);
  }
  BatchLayout batch;
  batch.seq_starts = seq_starts.data();
  batch.context_lens = context_lens.data();
  batch.block_tables = pages.data();  // row s: sequence s's blocks
  batch.positions = positions.data();
  batch.num_seqs = seqs;
  batch.num_tokens = seqs * fresh;
  batch.max_blocks_per_seq = blocks_per_seq;
  batch.max_query_len = fresh;
  batch.max_context_len = ctx;
  std::vector<float> q(static_cast<size_t>(seqs) * fresh * kHeads * kHeadDim);
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size());
  std::vector<uint64_t> weights((size_t{96} << 20) / sizeof(uint64_t), 1);
  ThreadPool pool(2);
  const float scale = 1.f / std::sqrt(static_cast<float>(kHeadDim));
  for (auto _ : state) {
    state.PauseTiming();
    benchmark::DoNotOptimize(std::accumulate(weights.begin(), weights.end(), uint64_t{0}));
    state.ResumeTiming();
    for (int32_t l = 0; l < kLayers; ++l) {
      const PagedKv kv{k[l].data(), v[l].data(), num_blocks, kBlockSize,
                       kKvHeads,    kHeadDim,    DType::kF16};
      PagedAttention(q.data(), int64_t{kHeads} * kHeadDim, batch, kv, kHeads, scale, out.data(),
                     pool);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * seqs * fresh * kHeads * kLayers);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"seqs", "cached", "new"})
    ->Args({16, 32, 1})
    ->Args({16, 128, 1})
    ->Args({16, 512, 1})
    ->Args({1, 512, 1})
    ->Args({1, 0, 511})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cohost::kernels::cpu

BENCHMARK_MAIN();
