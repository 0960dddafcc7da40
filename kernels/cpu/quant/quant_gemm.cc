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

float Dot(const QuantKernels& k, WeightFormat f, const void* row, const BlockQ8A* a, int64_t nb) {
  switch (f) {
    case WeightFormat::kQ8_0:
      return k.dot_q8_0(static_cast<const BlockQ8_0*>(row), a, nb);
    case WeightFormat::kQ4_0:
      return k.dot_q4_0(static_cast<const BlockQ4_0*>(row), a, nb);
    case WeightFormat::kQ4_1:
      return k.dot_q4_1(static_cast<const BlockQ4_1*>(row), a, nb);
    case WeightFormat::kDense:
      break;
  }
  return 0;
}

void Dot4(const QuantKernels& k, WeightFormat f, const void* row, const BlockQ8A* a,
          int64_t a_stride, int64_t nb, float* out) {
  switch (f) {
    case WeightFormat::kQ8_0:
      return k.dot4_q8_0(static_cast<const BlockQ8_0*>(row), a, a_stride, nb, out);
    case WeightFormat::kQ4_0:
      return k.dot4_q4_0(static_cast<const BlockQ4_0*>(row), a, a_stride, nb, out);
    case WeightFormat::kQ4_1:
      return k.dot4_q4_1(static_cast<const BlockQ4_1*>(row), a, a_stride, nb, out);
    case WeightFormat::kDense:
      break;
  }
}

}  // namespace

void QuantGemm(const float* a, WeightRef w, const float* bias, int32_t m, int32_t n, int32_t k,
               float* c, ThreadPool& pool) {
  const QuantKernels& table = SelectedQuantKernels();
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
          Dot4(table, w.format, base + j * row_bytes, qa + i * nb, nb, nb, dot);
          for (int64_t r = 0; r < 4; ++r) {
            c[(i + r) * n + j] = bias != nullptr ? dot[r] + bias[j] : dot[r];
          }
        }
      }
      for (; i < m; ++i) {
        for (int64_t j = j0; j < j1; ++j) {
          const float dot = Dot(table, w.format, base + j * row_bytes, qa + i * nb, nb);
          c[i * n + j] = bias != nullptr ? dot + bias[j] : dot;
        }
      }
    }
  });
}

}  // namespace cohost::kernels::cpu
