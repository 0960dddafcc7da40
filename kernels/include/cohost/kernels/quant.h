// Weights kept in their file's quantized formats (GGUF's block layouts, so a
// tensor's bytes are used as they lie in the file) and the int8 blocks the
// activations are quantized to for the integer dot products
// (kernels/cpu/quant/). Every format packs 32 values per block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cohost::kernels {

enum class WeightFormat : uint8_t {
  kDense,  // the backend's compute dtype
  kQ8_0,   // ggml Q8_0: fp16 scale d, 32 int8 q; x = d q
  kQ4_0,   // ggml Q4_0: fp16 scale d, 32 4-bit q; x = d (q - 8)
  kQ4_1,   // ggml Q4_1: fp16 scale d and min m, 32 4-bit q; x = d q + m
};
std::string_view WeightFormatName(WeightFormat f);

inline constexpr int32_t kQuantBlock = 32;

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
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20,
              "GGUF's block layouts");

// Bytes of one row of `k` values (k a multiple of kQuantBlock); for kDense,
// 0 (the compute dtype decides).
size_t QuantRowBytes(WeightFormat f, int64_t k);

// A block of activations: 32 int8 values and their scale, x ~ d q, with
// s = d * sum(q) for formats with a min (Q4_1).
struct BlockQ8A {
  float d;
  float s;
  int8_t qs[kQuantBlock];
};

// A weight operand of Gemm: dense in the compute dtype, or rows of blocks.
struct WeightRef {
  WeightRef(const void* p) : data(p) {}  // NOLINT(google-explicit-constructor): dense by default
  WeightRef(const void* p, WeightFormat f) : data(p), format(f) {}
  const void* data;
  WeightFormat format = WeightFormat::kDense;
};

}  // namespace cohost::kernels
