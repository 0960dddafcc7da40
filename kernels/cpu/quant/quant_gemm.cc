// cpu::QuantGemm: activations quantized per row to int8 blocks once, then
// tiles of eight weight rows against chunks of activation rows through the
// selected table.

#include <algorithm>
#include <vector>

#include "../cpu_ops.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

// Output columns per task (two tiles): 16 floats are one 64-byte cache line
// of c, so no two threads write one line.
constexpr int64_t kColumnTile = 16;

}  // namespace

void QuantGemm(const float* a, WeightRef w, const float* bias, int32_t m, int32_t n, int32_t k,
               float* c, ThreadPool& pool) {
  const QuantKernels& table = SelectedQuantKernels();
  const QuantTileFn tile = table.Tile(w.format);
  const int64_t nb = k / kQuantBlock;
  const size_t row_bytes = QuantRowBytes(w.format, k);
  // The caller's thread owns its scratch; workers only read it.
  thread_local std::vector<BlockQ8A> quantized;
  quantized.resize(static_cast<size_t>(m) * static_cast<size_t>(nb));
  BlockQ8A* qa = quantized.data();
  pool.ParallelFor(m, 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) table.quantize_q8a(a + i * k, k, qa + i * nb);
  });
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t tasks = (n + kColumnTile - 1) / kColumnTile;
  pool.ParallelFor(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t j0 = t * kColumnTile, j1 = std::min<int64_t>(n, j0 + kColumnTile);
      // The task's weight rows stay in cache while every chunk of
      // activation rows passes through them.
      for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
        const int64_t rows = std::min<int64_t>(kTileRows, m - r0);
        for (int64_t j = j0; j < j1; j += kTileCols) {
          tile(base + j * row_bytes, row_bytes,
               static_cast<int>(std::min<int64_t>(kTileCols, j1 - j)), qa + r0 * nb, rows, nb,
               c + r0 * n + j, n);
        }
      }
      if (bias != nullptr) {
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = j0; j < j1; ++j) c[i * n + j] += bias[j];
        }
      }
    }
  });
}

}  // namespace cohost::kernels::cpu
