// The CPU's quantized dot products: weights in GGUF blocks (every
// WeightFormat but kDense) against activations quantized per 32 values to
// int8 (BlockQ8A), summed per 32-value block in integers and scaled in fp32,
// as llama.cpp does. One portable scalar table, the reference; an AVX2 table
// and an AVX-512 VNNI one, each used only where cpuid says the CPU has what it
// needs. SelectedQuantKernels picks once, at first use.
#pragma once

#include <array>
#include <cstdint>

#include "cohost/kernels/quant.h"

namespace cohost::kernels::cpu {

// sum over the nb 32-value blocks of one weight row `w` (nb a multiple of
// the format's sub-blocks per block: 8 for the K-quants) against `a`, each
// block's sum exact in int32.
using QuantDotFn = float (*)(const void* w, const BlockQ8A* a, int64_t nb);
// Four activation rows (row r at a + r * a_stride) against one weight row,
// each weight block unpacked once: out[r] equals the same table's dot of row
// r bit for bit (prefill's rows share each weight row).
using QuantDot4Fn = void (*)(const void* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                             float* out);

// 32-value sub-blocks per block of each layout.
template <typename Block>
inline constexpr int64_t kSubBlocks = 1;
template <>
inline constexpr int64_t kSubBlocks<BlockQ4_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ5_K> = kSuperBlock / kQuantBlock;
template <>
inline constexpr int64_t kSubBlocks<BlockQ6_K> = kSuperBlock / kQuantBlock;

struct QuantKernels {
  const char* name;  // "scalar", "avx2"
  // x[k] (k a multiple of 32) -> k / 32 blocks: d = max|x| / 127, q = round(x / d)
  // (to nearest, ties to even), s = d * sum(q). The same bytes from every table.
  void (*quantize_q8a)(const float* x, int64_t k, BlockQ8A* out);
  // Indexed by WeightFormat; nullptr for kDense.
  std::array<QuantDotFn, kWeightFormats> dot;
  std::array<QuantDot4Fn, kWeightFormats> dot4;

  QuantDotFn Dot(WeightFormat f) const { return dot[static_cast<size_t>(f)]; }
  QuantDot4Fn Dot4(WeightFormat f) const { return dot4[static_cast<size_t>(f)]; }
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
// The fastest table this CPU runs.
const QuantKernels& SelectedQuantKernels();

}  // namespace cohost::kernels::cpu
