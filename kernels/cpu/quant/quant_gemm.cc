// cpu::QuantGemm: activations quantized per row to int8 blocks once, then
// tiles of the table's weight rows (of one part or several; in rows or in
// panels) against all activation rows through the selected table.

#include <algorithm>
#include <vector>

#include "../cpu_ops.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

// Output columns per task (one or two tiles, or a panel): 16 floats are
// one 64-byte cache line of c, so no two threads write one line.
constexpr int64_t kColumnTile = kMaxTileCols;
static_assert(kColumnTile == kPanelRows);
// Activation values quantized per parallel chunk: a decode batch's rows
// (16 x 576 values: a few microseconds) are quantized on the calling thread,
// since handing them to the pool costs about as much as the work.
constexpr int64_t kQuantizeGrain = 16384;

}  // namespace

void QuantGemm(const float* a, const GemmPart* parts, int32_t num_parts, int32_t m, int32_t k,
               ThreadPool& pool) {
  const QuantKernels& table = SelectedQuantKernels();
  const int64_t nb = k / kQuantBlock;
  // The caller's thread owns its scratch; workers only read it.
  thread_local std::vector<BlockQ8A> quantized;
  quantized.resize(static_cast<size_t>(m) * static_cast<size_t>(nb));
  BlockQ8A* qa = quantized.data();
  pool.ParallelFor(m, std::max<int64_t>(1, kQuantizeGrain / k), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) table.quantize_q8a(a + i * k, k, qa + i * nb);
  });
  // Tasks are numbered across the parts: part p's run from first_task[p].
  thread_local std::vector<int64_t> first_task;
  first_task.assign(static_cast<size_t>(num_parts) + 1, 0);
  for (int32_t p = 0; p < num_parts; ++p) {
    first_task[p + 1] = first_task[p] + (parts[p].n + kColumnTile - 1) / kColumnTile;
  }
  const int64_t* starts = first_task.data();
  pool.ParallelFor(first_task[num_parts], 1, [&](int64_t begin, int64_t end) {
    int32_t p = 0;
    for (int64_t t = begin; t < end; ++t) {
      while (t >= starts[p + 1]) ++p;
      const GemmPart& part = parts[p];
      const QuantTileFn tile = table.Tile(part.w.format);
      const size_t row_bytes = QuantRowBytes(part.w.format, k);
      const auto* base = static_cast<const uint8_t*>(part.w.data);
      const auto* bias = static_cast<const float*>(part.bias);
      auto* c = static_cast<float*>(part.c);
      const int64_t n = part.n, ldc = part.RowStride();
      // The part's rows of a (GemmPart::first_row, rows), quantized with the rest.
      const int32_t rows = part.Rows(m);
      if (rows == 0) continue;
      const BlockQ8A* pa = qa + static_cast<int64_t>(part.first_row) * nb;
      const int64_t j0 = (t - starts[p]) * kColumnTile, j1 = std::min<int64_t>(n, j0 + kColumnTile);
      const uint8_t* w = base + j0 * row_bytes;
      // j0 starts a panel; the panel's rows past n (a product of the first
      // rows of a matrix) are not written.
      const bool panel = part.w.layout == WeightLayout::kPanels16;
      const QuantTileFn panel_tile = panel ? table.PanelTile(part.w.format) : nullptr;
      if (panel_tile != nullptr && j1 - j0 == kPanelRows) {
        panel_tile(w, row_bytes, kPanelRows, pa, rows, nb, c + j0, ldc);
      } else {
        if (panel) {
          // This table has no panel tile, or the part ends inside the panel:
          // the panel's rows as stored, in a buffer its thread owns.
          thread_local std::vector<uint8_t> unpacked;
          unpacked.resize(kPanelRows * row_bytes);
          UnpackPanel(part.w.format, w, k, unpacked.data());
          w = unpacked.data();
        }
        // Each tile takes every activation row: its weight rows stay in
        // cache (the AMX table decodes them once) while the rows pass.
        for (int64_t j = j0; j < j1; j += table.tile_cols) {
          tile(w + (j - j0) * row_bytes, row_bytes,
               static_cast<int>(std::min<int64_t>(table.tile_cols, j1 - j)), pa, rows, nb, c + j,
               ldc);
        }
      }
      if (bias != nullptr) {
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = j0; j < j1; ++j) c[i * ldc + j] += bias[j];
        }
      }
    }
  });
}

}  // namespace cohost::kernels::cpu
