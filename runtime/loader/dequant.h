// ggml tensor element types (as GGUF files name them) and their conversion to
// fp32. Quantized types store blocks of 32 values (256 for the K-quants); a
// row's length must be a multiple of the block size.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cohost::runtime {

// ggml's numbering (ggml.h, enum ggml_type); values are what GGUF stores.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  GgmlType type;
  absl::string_view name;  // "Q4_1"
  int64_t block_elems;     // values per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
  bool dequantizable;      // DequantizeToF32 supports it
  // Byte offsets in a block of its fp16 scale fields (d, and m or dmin); -1
  // for none. What CheckBlockScales reads.
  std::array<int16_t, 2> scale_at = {-1, -1};
};

// nullptr for a type id this build does not know (the reader rejects those).
const GgmlTypeTraits* FindGgmlType(uint32_t id);

// IEEE half / bfloat16 bit patterns to fp32 (exact; subnormals, inf, NaN kept).
float HalfBitsToF32(uint16_t h);
float Bf16BitsToF32(uint16_t h);

// The types DequantizeToF32 reads, for error messages: "F32, F16, ...".
const std::string& DequantizableTypeNames();

// Whether a matrix stored as `type`, rows `cols` values long, can be kept as
// stored (LoadOptions::keep_quantized): a dequantizable block type, or F16 /
// BF16 with rows a multiple of 32. The loader keeps exactly these, and
// Model::PredictWeightsBytes predicts by the same rule.
bool KeepsRowsAsStored(GgmlType type, int64_t cols);

// INVALID_ARGUMENT naming the first block of `src` (whole blocks of `type`,
// the first of them the tensor's block `first_block`) whose fp16 scale or min
// is infinite or NaN; OK for plain types.
absl::Status CheckBlockScales(GgmlType type, absl::Span<const uint8_t> src,
                              int64_t first_block = 0);

// Dequantizes `n` values of `type` from `src` (exactly the bytes of those n
// values, n a multiple of the block size) into `dst` (n floats).
// UNIMPLEMENTED for types outside DequantizableTypeNames(); CheckBlockScales's
// error for a non-finite scale;
// INVALID_ARGUMENT when n or the sizes do not agree.
absl::Status DequantizeToF32(GgmlType type, absl::Span<const uint8_t> src, int64_t n,
                             absl::Span<float> dst);

}  // namespace cohost::runtime
