// Weights kept in their file's quantized formats (GGUF's block layouts, so a
// tensor's bytes are used as they lie in the file) and the int8 blocks the
// activations are quantized to for the integer dot products
// (kernels/cpu/quant/). A block packs 32 values; a K-quant super-block 256,
// as eight sub-blocks of 32.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cohost::kernels {

enum class WeightFormat : uint8_t {
  kDense,  // the backend's compute dtype
  kQ8_0,   // ggml Q8_0: fp16 scale d, 32 int8 q; x = d q
  kQ4_0,   // ggml Q4_0: fp16 scale d, 32 4-bit q; x = d (q - 8)
  kQ4_1,   // ggml Q4_1: fp16 scale d and min m, 32 4-bit q; x = d q + m
  kQ5_0,   // ggml Q5_0: as Q4_0 with a fifth bit per value in qh; x = d (q - 16)
  kQ5_1,   // ggml Q5_1: as Q4_1 with a fifth bit per value in qh; x = d q + m
  kQ4_K,   // ggml Q4_K: 256 values; sub-block j: x = d sc_j q - dmin m_j, q 4-bit
  kQ5_K,   // ggml Q5_K: as Q4_K with a fifth bit per value
  kQ6_K,   // ggml Q6_K: 256 values; x = d sc (q - 32), q 6-bit, an int8 sc per 16
  kQ2_K,   // ggml Q2_K: 256 values; per 16: x = d sc q - dmin m, q 2-bit, sc and m 4-bit
  kQ3_K,   // ggml Q3_K: 256 values; per 16: x = d (sc - 32) q, q 3-bit signed, sc 6-bit
  // 16-bit floats, one a value (rows a multiple of 32 long, as every format
  // here): fp32 activations against them, widened as read (cpu::HalfGemm).
  kF16,
  kBF16,
};
inline constexpr size_t kWeightFormats = 13;
// The int8 block formats (Q8_0 .. Q3_K), whose products quantize the
// activations; kDense and the 16-bit floats are not.
inline bool IsBlockFormat(WeightFormat f) {
  return f != WeightFormat::kDense && f != WeightFormat::kF16 && f != WeightFormat::kBF16;
}
std::string_view WeightFormatName(WeightFormat f);

inline constexpr int32_t kQuantBlock = 32;
inline constexpr int32_t kSuperBlock = 256;

struct BlockQ8_0 {
  uint16_t d;  // fp16 bits
  int8_t qs[kQuantBlock];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQuantBlock / 2];  // value i in the low nibble of qs[i], i+16 in the high
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQuantBlock / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit i of the little-endian uint32: value i's fifth bit
  uint8_t qs[kQuantBlock / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQuantBlock / 2];
};
// Sub-blocks 2i and 2i+1 are the low and high nibbles of qs[32i .. 32i+31];
// their six-bit scales and mins are packed in `scales` (KScaleMin).
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kSuperBlock / 2];
};
// As Q4_K; bit j of qh[l] is the fifth bit of value l of sub-block j.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kSuperBlock / 8];
  uint8_t qs[kSuperBlock / 2];
};
// Value 128h + 32c + l (half h, quarter c, l < 32): low four bits in
// ql[64h + 32(c & 1) + l] (low nibble for c < 2, high for c >= 2), top two
// bits in qh[32h + l] at bit 2c; its scale scales[8h + 2c + l / 16].
struct BlockQ6_K {
  uint8_t ql[kSuperBlock / 2];
  uint8_t qh[kSuperBlock / 4];
  int8_t scales[kSuperBlock / 16];
  uint16_t d;
};
// Value 128h + 32c + l (half h, plane c, l < 32): bits 2c-2c+1 of
// qs[32h + l]; its scale (low nibble) and min (high nibble) in
// scales[8h + 2c + l / 16].
struct BlockQ2_K {
  uint8_t scales[kSuperBlock / 16];
  uint8_t qs[kSuperBlock / 4];
  uint16_t d, dmin;
};
// Codes laid out as Q2_K's, less 4 unless bit 4h + c of hmask[l] is set; the
// sixteen six-bit scales (offset 32) packed as Q3KScale unpacks them.
struct BlockQ3_K {
  uint8_t hmask[kSuperBlock / 8];
  uint8_t qs[kSuperBlock / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
                  sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ4_K) == 144 &&
                  sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ2_K) == 84 &&
                  sizeof(BlockQ3_K) == 110,
              "GGUF's block layouts");

// Scale i (0..15, one per 16 values) of a Q3_K super-block, signed: low four
// bits in the low (i < 8) or high nibble of scales[i % 8], top two bits at
// bit 2 (i / 4) of scales[8 + i % 4]; less 32.
inline int Q3KScale(const uint8_t* scales, int i) {
  const int low = i < 8 ? scales[i] & 0x0f : scales[i - 8] >> 4;
  const int high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Sub-block j's (0..7) six-bit scale and min in a Q4_K / Q5_K super-block:
// bytes 0-3 hold scales 0-3 and bytes 4-7 mins 0-3 in their low six bits;
// bytes 8-11 the low four bits of scales (low nibble) and mins (high nibble)
// 4-7, whose top two bits are the top bits of bytes 0-3 and 4-7.
struct KScaleMin {
  uint8_t scale, min;
};
inline KScaleMin UnpackKScaleMin(const uint8_t* scales, int j) {
  if (j < 4) {
    return {static_cast<uint8_t>(scales[j] & 63), static_cast<uint8_t>(scales[j + 4] & 63)};
  }
  return {static_cast<uint8_t>((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4)),
          static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))};
}

// Values per block of `f` (32, or 256 for the K-quants; 1 for kDense).
int32_t QuantBlockValues(WeightFormat f);

// Bytes of one row of `k` values (k a multiple of QuantBlockValues(f)); for
// kDense, 0 (the compute dtype decides).
size_t QuantRowBytes(WeightFormat f, int64_t k);

// A block of activations: 32 int8 values and their scale, x ~ d q, with
// s = d * sum(q) for formats with a min (Q4_1) and the integer sums of
// values 0-15 and 16-31 for formats with an offset (Q4_0: code - 8).
struct BlockQ8A {
  float d;
  float s;
  int16_t sum16[2];
  int8_t qs[kQuantBlock];
};

// How a matrix's rows of blocks lie in memory.
enum class WeightLayout : uint8_t {
  kRows,      // as the file stores them: row after row
  kPanels16,  // each whole group of 16 rows interleaved (cohost/kernels/panels.h)
};

// A weight operand of Gemm: dense in the compute dtype, or rows of blocks.
struct WeightRef {
  WeightRef(const void* p) : data(p) {}  // NOLINT(google-explicit-constructor): dense by default
  WeightRef(const void* p, WeightFormat f, WeightLayout l = WeightLayout::kRows)
      : data(p), format(f), layout(l) {}
  const void* data;
  WeightFormat format = WeightFormat::kDense;
  WeightLayout layout = WeightLayout::kRows;
};

// One product of Backend::GroupedGemm: c = a * w^T (+ bias), c [m, n] with
// rows ldc apart (0: n), so that parts can fill columns of one matrix. A
// part takes a's rows [first_row, first_row + Rows(m)) (all m by default;
// `rows` -1: the rest from first_row) and c holds their products: a
// mixture of experts' products, each expert's over the rows routed to it.
struct GemmPart {
  WeightRef w{nullptr};
  const void* bias = nullptr;  // [n] or null
  int32_t n = 0;
  void* c = nullptr;  // [m, n], rows ldc apart
  int32_t ldc = 0;    // 0: n
  int32_t first_row = 0;
  int32_t rows = -1;  // -1: m - first_row
  int32_t RowStride() const { return ldc != 0 ? ldc : n; }
  int32_t Rows(int32_t m) const { return rows >= 0 ? rows : m - first_row; }
};

}  // namespace cohost::kernels
