// The CPU's quantized dot products: weights in GGUF blocks (every
// WeightFormat but kDense) against activations quantized per 32 values to
// int8 (BlockQ8A), summed per 32-value block in integers and scaled in fp32,
// as llama.cpp does, eight or sixteen weight rows at a time (a tile, one
// vector of fp32 outputs) so that the fp32 work is one vector operation per
// sub-block and activation row. One portable
// scalar table, the reference; an AVX2 table, an AVX-512 VNNI one and an
// AMX one (the VNNI table with the integer sums of batches taken by tile
// multiplies), each used only where cpuid says the CPU has what it needs. SelectedQuantKernels
// picks once, at first use. The vector tables also read weights laid out
// in panels (WeightLayout::kPanels16), their preferred layout.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

#include "cohost/kernels/panels.h"
#include "cohost/kernels/quant.h"

namespace cohost::kernels::cpu {

// Weight rows per tile of the scalar and AVX2 tables: one 256-bit vector of
// fp32 outputs (the AVX-512 VNNI table's tiles take twice as many).
inline constexpr int kTileCols = 8;
// The most weight rows any table's tile takes.
inline constexpr int kMaxTileCols = 16;
// Activation rows whose accumulators a tile keeps at once; longer batches
// are taken in chunks of this many.
inline constexpr int64_t kTileRows = 16;

// One tile of the product: `rows` (1..the table's tile_cols) weight rows, row i at
// w + i * row_bytes, against m activation rows of nb 32-value blocks each
// (row r at a + r * nb): c[r * ldc + i] = the dot of weight row i and
// activation row r.
//
// Every table computes each output the same way, whatever `rows` and m, so
// a sequence's logits do not depend on what else is in its batch: acc = 0;
// for each 32-value sub-block in order, acc = fma(float(isum), scale * a.d,
// acc), then, for formats with a min (Q4_1, Q5_1, Q4_K, Q5_K),
// acc = fma(min, a.s, acc), and for Q2_K, whose two halves have integer mins
// m0 and m1, acc = fma(min, a.d * float(m0 a.sum16[0] + m1 a.sum16[1]), acc).
// isum is the exact integer sum of the weight codes (offsets applied, the
// per-16 scales of Q6_K, Q2_K and Q3_K multiplied in) times the activation
// codes; scale and min are the sub-block's fp32 factors. Vector tables differ
// from the scalar one only in how they reach isum, so all give the same bits
// .
using QuantTileFn = void (*)(const void* w, size_t row_bytes, int rows, const BlockQ8A* a,
                             int64_t m, int64_t nb, float* c, int64_t ldc);

// 32-value sub-blocks per block of each layout.
template <typename Block>
inline constexpr int64_t kSubBlocks = 1;
template <>
inline constexpr int64_t kSubBlocks<BlockQ4_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ5_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ6_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ2_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ3_K> = kSuperBlock / kQuantBlock;

// Formats with an integer scale per 16 values (sc16).
template <typename Block>
inline constexpr bool kPer16Scales =
    std::is_same_v<Block, BlockQ6_K> || std::is_same_v<Block, BlockQ2_K> ||
    std::is_same_v<Block, BlockQ3_K>;
// Q2_K: an integer min per 16 values, against the activations' per-16 sums.
template <typename Block>
inline constexpr bool kHasMin16 = std::is_same_v<Block, BlockQ2_K>;

// Formats whose value is scale * code + min (the activations' s carries the
// min term); the rest are scale * (code - offset).
template <typename Block>
inline constexpr bool kHasMin =
    std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1> ||
    std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>;

// A panel (cohost/kernels/panels.h) as the tiles read it. Bytes of a
// block's fp16 fields (d; d and a min):
template <typename Block>
inline constexpr int64_t kFieldBytes = 2;
template <>
inline constexpr int64_t kFieldBytes<BlockQ4_1> = 4;
template <>
inline constexpr int64_t kFieldBytes<BlockQ5_1> = 4;
template <>
inline constexpr int64_t kFieldBytes<BlockQ4_K> = 4;
template <>
inline constexpr int64_t kFieldBytes<BlockQ5_K> = 4;

// Bytes of `per_row` bytes of each of a panel's rows.
constexpr int64_t PanelBytes(int64_t per_row) { return per_row * kPanelRows; }
// Bytes of one block of a panel: its sixteen rows' codes (every byte but
// the fp16 fields), and their fp16 factors.
template <typename Block>
inline constexpr int64_t kPanelCodeBytes = PanelBytes(static_cast<int64_t>(sizeof(Block)) -
                                                      kFieldBytes<Block>);
template <typename Block>
inline constexpr int64_t kPanelFactorBytes = PanelBytes(kFieldBytes<Block>);

// Formats whose codes carry a fifth bit in qh.
template <typename Block>
inline constexpr bool kFifthBit =
    std::is_same_v<Block, BlockQ5_0> || std::is_same_v<Block, BlockQ5_1>;

// The block types with panels (HasPanels's formats).
template <typename Block>
inline constexpr bool kHasPanels =
    std::is_same_v<Block, BlockQ8_0> || std::is_same_v<Block, BlockQ4_0> ||
    std::is_same_v<Block, BlockQ4_1> || kFifthBit<Block> || std::is_same_v<Block, BlockQ4_K> ||
    std::is_same_v<Block, BlockQ5_K> || std::is_same_v<Block, BlockQ6_K>;

// A panel is read as two streams (codes, factors), each a block at a time,
// which the hardware prefetchers follow late from the last level cache
// (the loads of the first AMX version stalled for half its time): a panel
// tile fetches the next panel (its next task on this thread) linearly,
// block b's share of it while block b of `panel` (of `blocks` a row) is
// read. (Addresses as integers: past the matrix's end they are only
// hints.)
template <typename Block>
inline void PrefetchNextPanel(const void* panel, int64_t blocks, int64_t b) {
  constexpr int64_t kBlockBytes = kPanelCodeBytes<Block> + kPanelFactorBytes<Block>;
  const uintptr_t next = reinterpret_cast<uintptr_t>(panel) + blocks * kBlockBytes;
  for (int64_t at = b * kBlockBytes; at < (b + 1) * kBlockBytes; at += 64) {
    __builtin_prefetch(reinterpret_cast<const char*>(next + at), 0, 3);  // prefetcht0
  }
}

struct QuantKernels {
  const char* name;  // "scalar", "avx2", "avx512vnni", "amx"
  int tile_cols;     // the most weight rows one call of `tile` takes
  // x[k] (k a multiple of 32) -> k / 32 blocks: d = max|x| / 127, q = round(x / d)
  // (to nearest, ties to even), s = d * sum(q), sum16 the two halves' sums.
  // The same bytes from every table.
  void (*quantize_q8a)(const float* x, int64_t k, BlockQ8A* out);
  // Indexed by WeightFormat; nullptr for kDense.
  std::array<QuantTileFn, kWeightFormats> tile;
  // Tiles of one panel (WeightLayout::kPanels16: w at the panel, rows 16),
  // by WeightFormat; nullptr where this table has none (QuantGemm then
  // gives `tile` the panel's rows as stored).
  std::array<QuantTileFn, kWeightFormats> panel_tile;

  QuantTileFn Tile(WeightFormat f) const { return tile[static_cast<size_t>(f)]; }
  QuantTileFn PanelTile(WeightFormat f) const { return panel_tile[static_cast<size_t>(f)]; }
  // The layout this table's tiles read fastest.
  WeightLayout PreferredLayout(WeightFormat f) const {
    return PanelTile(f) != nullptr ? WeightLayout::kPanels16 : WeightLayout::kRows;
  }
};

// The `k` values of one weight row in format `f` (not kDense), dequantized
// as the loader's reference path does, bit for bit: an embedding row looked
// up from a table kept in its blocks.
void DequantizeRow(WeightFormat f, const void* row, int64_t k, float* out);

const QuantKernels& ScalarQuantKernels();
// nullptr when this CPU lacks AVX2, FMA or F16C.
const QuantKernels* Avx2QuantKernels();
// nullptr when this CPU lacks those or AVX-512 F, VL and VNNI.
const QuantKernels* Avx512VnniQuantKernels();
// nullptr when this CPU lacks those or AMX tiles with int8, or the kernel
// did not let this process use the tile registers.
const QuantKernels* AmxQuantKernels();
// The fastest table this CPU runs, or the one HostKernelCap (the
// environment's COHOST_CPU_KERNELS) holds it to.
const QuantKernels& SelectedQuantKernels();

}  // namespace cohost::kernels::cpu
