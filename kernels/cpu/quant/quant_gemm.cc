// cpu::QuantGemm: activations quantized per row to int8 blocks once, then
// every (row, weight row) pair through the selected table's dot product.

#include <algorithm>
#include <vector>

#include "../cpu_ops.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

// Output columns per task: 16 floats are one 64-byte cache line of c.
constexpr int64_t kColumnTile = 16;

}  // namespace

void QuantGemm(const float* a, WeightRef w, const float* bias, int32_t m, int32_t n, int32_t k,
               float* c, ThreadPool& pool) {
  const QuantKernels& table = SelectedQuantKernels();
  const QuantDotFn dot_row = table.Dot(w.format);
  const QuantDot4Fn dot4_rows = table.Dot4(w.format);
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
  const int64_t tiles = (n + kColumnTile - 1) / kColumnTile;
  pool.ParallelFor(tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t j0 = t * kColumnTile, j1 = std::min<int64_t>(n, j0 + kColumnTile);
      // The tile's weight rows stay in cache while every activation row
      // passes, four rows per weight block where there are four.
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        for (int64_t j = j0; j < j1; ++j) {
          float dot[4];
          dot4_rows(base + j * row_bytes, qa + i * nb, nb, nb, dot);
          for (int64_t r = 0; r < 4; ++r) {
            c[(i + r) * n + j] = bias != nullptr ? dot[r] + bias[j] : dot[r];
          }
        }
      }
      for (; i < m; ++i) {
        for (int64_t j = j0; j < j1; ++j) {
          const float dot = dot_row(base + j * row_bytes, qa + i * nb, nb);
          c[i * n + j] = bias != nullptr ? dot + bias[j] : dot;
        }
      }
    }
  });
}

}  // namespace cohost::kernels::cpu
