// The quantized dot products, each table on this CPU: one weight matrix of
// SmolLM2-135M's down-projection shape (576 x 1536; rows of 1536 hold whole
// K-quant super-blocks), one thread: the tiles of each table against one
// activation row (a decode step's matrix-vector product: weight bytes read
// per second) or a batch (multiply-adds per second; TableArgs says how to
// read repetitions); QuantGemm, the selected table through the pool;
// HalfGemm's two paths on 16-bit weights; and the copy bandwidth decode is
// held to. Compare tables by their ratio
// within one run.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/dtype.h"
#include "cohost/kernels/panels.h"
#include "cohost/kernels/quant.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/half_gemm_amx.h"
#include "kernels/cpu/half_gemm_bf16.h"
#include "kernels/cpu/openblas_core.h"
#include "kernels/cpu/quant/cpu_features.h"
#include "kernels/cpu/quant/quant_kernels.h"
#include "kernels/cpu/thread_pool.h"

// OpenBLAS's own (cblas.h is the kernels library's private include).
extern "C" void openblas_set_num_threads(int);  // NOLINT(readability-identifier-naming)

namespace cohost::kernels::cpu {
namespace {

constexpr int64_t kRows = 576, kCols = 1536, kBlocks = kCols / kQuantBlock;

// Random bytes with finite scales.
template <typename Block>
std::vector<Block> Weights() {
  std::mt19937 rng(1);
  std::vector<Block> w(kRows * kBlocks / kSubBlocks<Block>);
  for (Block& b : w) {
    auto* bytes = reinterpret_cast<uint8_t*>(&b);
    for (size_t i = 0; i < sizeof(Block); ++i) bytes[i] = static_cast<uint8_t>(rng());
    b.d = F32ToF16(0.01f);
    if constexpr (requires { b.m; }) b.m = F32ToF16(-0.05f);
    if constexpr (requires { b.dmin; }) b.dmin = F32ToF16(0.002f);
  }
  return w;
}

// m rows of activations, quantized by table k.
std::vector<BlockQ8A> Activations(const QuantKernels& k, int64_t m) {
  std::mt19937 rng(2);
  std::normal_distribution<float> n;
  std::vector<float> x(m * kCols);
  for (float& v : x) v = n(rng);
  std::vector<BlockQ8A> a(m * kBlocks);
  for (int64_t r = 0; r < m; ++r)
    k.quantize_q8a(x.data() + r * kCols, kCols, a.data() + r * kBlocks);
  return a;
}

// Argument 0 of the per-table benchmarks.
const QuantKernels* Table(int64_t i) {
  switch (i) {
    case 0:
      return &ScalarQuantKernels();
    case 1:
      return Avx2QuantKernels();
    case 2:
      return Avx512VnniQuantKernels();
    default:
      return AmxQuantKernels();
  }
}

template <typename Block, WeightFormat kFormat>
void BM_Dot(benchmark::State& state) {
  const QuantKernels* k = Table(state.range(0));
  if (k == nullptr) {
    state.SkipWithError("this CPU cannot run the table");
    return;
  }
  const int64_t m = state.range(1);
  const std::vector<Block> w = Weights<Block>();
  const std::vector<BlockQ8A> a = Activations(*k, m);
  std::vector<float> out(m * kRows);
  const QuantTileFn tile = k->Tile(kFormat);
  const int64_t row_blocks = kBlocks / kSubBlocks<Block>;
  const size_t row_bytes = row_blocks * sizeof(Block);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; r += k->tile_cols) {
      tile(w.data() + r * row_blocks, row_bytes, k->tile_cols, a.data(), m, kBlocks, out.data() + r,
           kRows);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(k->name);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size() * sizeof(Block)));
  state.SetItemsProcessed(state.iterations() * m * kRows * kCols);
}

// The fastest of the repetitions: on a shared VM the noise only slows.
double Fastest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Table (0 scalar, 1 AVX2, 2 AVX-512 VNNI, 3 AMX) x activation rows (1: a
// decode step's matrix-vector product; 16, 32, 128: batches). With
// --benchmark_repetitions, read the "_min" row's time: the same statistic of
// a rate column is the slowest repetition's.
void TableArgs(benchmark::internal::Benchmark* b) {
  b->ArgsProduct({{0, 1, 2, 3}, {1, 16, 32, 128}})->ComputeStatistics("min", Fastest);
}

BENCHMARK(BM_Dot<BlockQ8_0, WeightFormat::kQ8_0>)->Name("dot_q8_0")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ4_0, WeightFormat::kQ4_0>)->Name("dot_q4_0")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ4_1, WeightFormat::kQ4_1>)->Name("dot_q4_1")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ5_0, WeightFormat::kQ5_0>)->Name("dot_q5_0")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ5_1, WeightFormat::kQ5_1>)->Name("dot_q5_1")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ4_K, WeightFormat::kQ4_K>)->Name("dot_q4_k")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ5_K, WeightFormat::kQ5_K>)->Name("dot_q5_k")->Apply(TableArgs);
BENCHMARK(BM_Dot<BlockQ6_K, WeightFormat::kQ6_K>)->Name("dot_q6_k")->Apply(TableArgs);

// The whole product as a step runs it (QuantGemm, one thread): m activation
// rows (1: a decode step; 16: sixteen sequences decoding; 128: a prefill
// chunk) against the same matrix, activations quantized inside, the matrix
// in rows as stored (argument 1: 0) or in panels (1: where the format has
// them; the selected table then reads them natively or unpacks them).
// Reported as multiply-adds per second (m * rows * cols), so the batched
// rate shows how much a weight block's unpacking is shared.
template <typename Block, WeightFormat kFormat>
void BM_Gemm(benchmark::State& state) {
  const int32_t m = static_cast<int32_t>(state.range(0));
  const std::vector<Block> stored = Weights<Block>();
  const bool panels = state.range(1) == 1 && FitsPanels(kFormat, kRows);
  // 64-byte aligned, as the CPU backend's buffers are.
  std::unique_ptr<uint8_t, decltype(&std::free)> w(
      static_cast<uint8_t*>(std::aligned_alloc(64, (stored.size() * sizeof(Block) + 63) / 64 * 64)),
      &std::free);
  const auto* stored_bytes = reinterpret_cast<const uint8_t*>(stored.data());
  if (panels) {
    PackPanels(kFormat, kRows, kCols, stored_bytes, w.get());
  } else {
    std::memcpy(w.get(), stored_bytes, stored.size() * sizeof(Block));
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> n;
  std::vector<float> x(static_cast<size_t>(m) * kCols);
  for (float& v : x) v = n(rng);
  std::vector<float> out(static_cast<size_t>(m) * kRows);
  ThreadPool pool(1);
  const GemmPart part{
      WeightRef(w.get(), kFormat, panels ? WeightLayout::kPanels16 : WeightLayout::kRows), nullptr,
      kRows, out.data()};
  for (auto _ : state) {
    QuantGemm(x.data(), &part, 1, m, kCols, pool);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(SelectedQuantKernels().name) + (panels ? " panels" : " rows"));
  state.SetItemsProcessed(state.iterations() * m * kRows * kCols);
}

// m x layout (0 rows, 1 panels).
void GemmArgs(benchmark::internal::Benchmark* b) { b->ArgsProduct({{1, 16, 128}, {0, 1}}); }

BENCHMARK(BM_Gemm<BlockQ4_0, WeightFormat::kQ4_0>)->Name("gemm_q4_0")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ4_1, WeightFormat::kQ4_1>)->Name("gemm_q4_1")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ8_0, WeightFormat::kQ8_0>)->Name("gemm_q8_0")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ5_0, WeightFormat::kQ5_0>)->Name("gemm_q5_0")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ4_K, WeightFormat::kQ4_K>)->Name("gemm_q4_k")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ5_K, WeightFormat::kQ5_K>)->Name("gemm_q5_k")->Apply(GemmArgs);
BENCHMARK(BM_Gemm<BlockQ6_K, WeightFormat::kQ6_K>)->Name("gemm_q6_k")->Apply(GemmArgs);

// HalfGemm on a 16-bit matrix of the same shape (an F16 or BF16 GGUF's
// matrices, kept at two bytes a value), one thread, m activation rows, by
// each path (argument 1: 0 the dot products, 1 widened slices through
// OpenBLAS's sgemm, held to one thread and to the core cpuid supports, as
// the CPU backend sets it, 2 the AMX tiles where the CPU has them, 3 the
// AVX512-BF16 pair products where it has those, bf16 weights only): where
// each wins decides kHalfGemmDotRows and which rows the tiles and the pair
// products take. Multiply-adds per second, as BM_Gemm.
void BM_HalfGemm(benchmark::State& state, WeightFormat format) {
  static const std::string core = [] {
    std::string name = SettleOpenBlasCore();
    openblas_set_num_threads(1);
    return name;
  }();
  const int32_t m = static_cast<int32_t>(state.range(0));
  const HalfGemmPath path = state.range(1) == 0   ? HalfGemmPath::kDots
                            : state.range(1) == 1 ? HalfGemmPath::kSgemm
                            : state.range(1) == 2 ? HalfGemmPath::kAmx
                                                  : HalfGemmPath::kBf16Dots;
  if (path == HalfGemmPath::kAmx && !HalfGemmAmxAvailable()) {
    state.SkipWithError("the AMX tiles need a CPU with AMX-BF16");
    return;
  }
  if (path == HalfGemmPath::kBf16Dots &&
      (format != WeightFormat::kBF16 || !HalfGemmBf16DotsAvailable())) {
    state.SkipWithError("the bf16 pair products need bf16 weights and a CPU with AVX512-BF16");
    return;
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> n;
  std::vector<uint16_t> w(static_cast<size_t>(kRows) * kCols);
  for (uint16_t& v : w) v = format == WeightFormat::kF16 ? F32ToF16(n(rng)) : F32ToBf16(n(rng));
  std::vector<float> x(static_cast<size_t>(m) * kCols);
  for (float& v : x) v = n(rng);
  std::vector<float> out(static_cast<size_t>(m) * kRows);
  ThreadPool pool(1);
  for (auto _ : state) {
    HalfGemm(x.data(), WeightRef(w.data(), format), nullptr, m, kRows, kCols, out.data(), kRows,
             pool, path);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(path == HalfGemmPath::kSgemm      ? "sgemm, OpenBLAS " + core
                 : path == HalfGemmPath::kAmx      ? std::string("amx tiles")
                 : path == HalfGemmPath::kBf16Dots ? std::string("avx512-bf16 pairs")
                                                   : std::string("dots, ") + HalfGemmDotsName());
  state.SetItemsProcessed(state.iterations() * m * kRows * kCols);
}

// m x path (0 dots, 1 sgemm, 2 AMX tiles, 3 AVX512-BF16 pair products).
void HalfGemmArgs(benchmark::internal::Benchmark* b) {
  b->ArgsProduct({{1, 4, 16, 32, 48, 64, 128, 512}, {0, 1, 2, 3}});
}

BENCHMARK_CAPTURE(BM_HalfGemm, f16, WeightFormat::kF16)->Apply(HalfGemmArgs);
BENCHMARK_CAPTURE(BM_HalfGemm, bf16, WeightFormat::kBF16)->Apply(HalfGemmArgs);

// One activation row (a decode step) against bf16 weights streamed from
// memory, as decode reads them, by the dot products and by the AVX512-BF16
// pair products in turn (which goes first alternating), so that this VM's
// swings in memory bandwidth hit both: argument 0 the matrix (0: the
// default model's lm_head, 49152 x 576; 1: its gate/up rows, 1536 x 576; 2:
// its down rows, 576 x 1536), two pool threads, copies of the matrix
// filling 256 MB so that each call's come from memory. Counters: each
// path's weight bytes a second, and pairs / dots.
void BM_HalfGemmRowFromMemory(benchmark::State& state) {
  if (!HalfGemmBf16DotsAvailable()) {
    state.SkipWithError("the bf16 pair products need a CPU with AVX512-BF16");
    return;
  }
  constexpr int64_t kShapes[][2] = {{49152, 576}, {1536, 576}, {576, 1536}};
  const int64_t n = kShapes[state.range(0)][0], k = kShapes[state.range(0)][1];
  const int64_t copies = std::max<int64_t>(2, (int64_t{256} << 20) / (2 * n * k));
  std::vector<uint16_t> w(static_cast<size_t>(copies * n * k), F32ToBf16(0.01f));
  std::vector<float> x(static_cast<size_t>(k), 1.f), out(static_cast<size_t>(n));
  ThreadPool pool(2);
  int64_t copy = 0, calls = 0;
  double seconds[2] = {0, 0};  // dots, pairs
  for (auto _ : state) {
    for (int turn = 0; turn < 2; ++turn) {
      const int which = (turn + static_cast<int>(calls % 2)) % 2;
      const auto start = std::chrono::steady_clock::now();
      HalfGemm(x.data(), WeightRef(w.data() + copy * n * k, WeightFormat::kBF16), nullptr, 1,
               static_cast<int32_t>(n), static_cast<int32_t>(k), out.data(),
               static_cast<int32_t>(n), pool,
               which == 0 ? HalfGemmPath::kDots : HalfGemmPath::kBf16Dots);
      seconds[which] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      benchmark::DoNotOptimize(out.data());
      copy = (copy + 1) % copies;
    }
    ++calls;
  }
  const double bytes = 2.0 * static_cast<double>(n * k * calls);
  state.counters["dots_GBps"] = bytes / seconds[0] / 1e9;
  state.counters["pairs_GBps"] = bytes / seconds[1] / 1e9;
  state.counters["pairs_over_dots"] = seconds[0] / seconds[1];
  state.SetLabel(std::string("dots: ") + HalfGemmDotsName());
}
BENCHMARK(BM_HalfGemmRowFromMemory)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Name("half_gemm_row_from_memory");

// The memory floor decode is compared against: memcpy of a 256 MB buffer
// per thread (far past the caches), in 1 and 2 threads at once; reported as
// bytes copied per second of wall time, summed over the threads.
void BM_Copy(benchmark::State& state) {
  constexpr size_t kBytes = size_t{256} << 20;
  std::vector<char> src(kBytes, 1), dst(kBytes, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kBytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}
BENCHMARK(BM_Copy)->Name("copy_256mb")->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);

// Read-only streaming, as decode reads its weights: the same buffers summed
// as 64-bit words (bytes read per second of wall time, over the threads). A
// copy also writes every byte, so this floor is the higher one.
void BM_Read(benchmark::State& state) {
  constexpr size_t kWords = (size_t{256} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> src(kWords, 1);
  for (auto _ : state) {
    uint64_t sum[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < kWords; i += 4) {
      for (int j = 0; j < 4; ++j) sum[j] += src[i + j];
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kWords * sizeof(uint64_t)));
}
BENCHMARK(BM_Read)->Name("read_256mb")->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);

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
