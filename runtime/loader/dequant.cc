// Block layouts follow ggml (little-endian): Q8_0 = {f16 d; int8 q[32]},
// Q4_0 = {f16 d; uint8 qs[16]}, Q4_1 = {f16 d; f16 m; uint8 qs[16]}; in the
// 4-bit types element j < 16 is the low nibble of qs[j], element j + 16 its
// high nibble.
#include "runtime/loader/dequant.h"

#include <array>
#include <cstring>

#include "absl/strings/str_format.h"

namespace cohost::runtime {
namespace {

constexpr int64_t kQk = 32;  // values per block of the 32-wide quant types

constexpr std::array<GgmlTypeTraits, 20> kTypes = {{
    {GgmlType::kF32, "F32", 1, 4, true},        {GgmlType::kF16, "F16", 1, 2, true},
    {GgmlType::kQ4_0, "Q4_0", 32, 18, true},    {GgmlType::kQ4_1, "Q4_1", 32, 20, true},
    {GgmlType::kQ5_0, "Q5_0", 32, 22, false},   {GgmlType::kQ5_1, "Q5_1", 32, 24, false},
    {GgmlType::kQ8_0, "Q8_0", 32, 34, true},    {GgmlType::kQ8_1, "Q8_1", 32, 36, false},
    {GgmlType::kQ2_K, "Q2_K", 256, 84, false},  {GgmlType::kQ3_K, "Q3_K", 256, 110, false},
    {GgmlType::kQ4_K, "Q4_K", 256, 144, false}, {GgmlType::kQ5_K, "Q5_K", 256, 176, false},
    {GgmlType::kQ6_K, "Q6_K", 256, 210, false}, {GgmlType::kQ8_K, "Q8_K", 256, 292, false},
    {GgmlType::kI8, "I8", 1, 1, false},         {GgmlType::kI16, "I16", 1, 2, false},
    {GgmlType::kI32, "I32", 1, 4, false},       {GgmlType::kI64, "I64", 1, 8, false},
    {GgmlType::kF64, "F64", 1, 8, false},       {GgmlType::kBF16, "BF16", 1, 2, true},
}};

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

const GgmlTypeTraits* FindGgmlType(uint32_t id) {
  for (const GgmlTypeTraits& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

float HalfBitsToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: normalize the mantissa into an fp32 normal.
    int shift = 0;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      ++shift;
    }
    mant &= 0x3ffu;
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float Bf16BitsToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

absl::Status DequantizeToF32(GgmlType type, absl::Span<const uint8_t> src, int64_t n,
                             absl::Span<float> dst) {
  const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(type));
  if (traits == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown ggml type %d", static_cast<uint32_t>(type)));
  }
  if (!traits->dequantizable) {
    return absl::UnimplementedError(absl::StrFormat(
        "tensor type %s is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
        traits->name));
  }
  if (n < 0 || n % traits->block_elems != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d values of type %s: not a multiple of its block size %d", n,
                        traits->name, traits->block_elems));
  }
  const int64_t blocks = n / traits->block_elems;
  if (static_cast<int64_t>(src.size()) != blocks * traits->block_bytes ||
      static_cast<int64_t>(dst.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d values of type %s need %d source bytes and %d floats; got %d and %d", n,
                        traits->name, blocks * traits->block_bytes, n, src.size(), dst.size()));
  }
  const uint8_t* s = src.data();
  float* d = dst.data();
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(d, s, static_cast<size_t>(n) * 4);
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) d[i] = HalfBitsToF32(LoadU16(s + 2 * i));
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) d[i] = Bf16BitsToF32(LoadU16(s + 2 * i));
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < blocks; ++b, s += 34, d += kQk) {
        const float scale = HalfBitsToF32(LoadU16(s));
        for (int j = 0; j < kQk; ++j)
          d[j] = scale * static_cast<float>(static_cast<int8_t>(s[2 + j]));
      }
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < blocks; ++b, s += 18, d += kQk) {
        const float scale = HalfBitsToF32(LoadU16(s));
        const uint8_t* qs = s + 2;
        for (int j = 0; j < kQk / 2; ++j) {
          d[j] = scale * static_cast<float>((qs[j] & 0x0f) - 8);
          d[j + kQk / 2] = scale * static_cast<float>((qs[j] >> 4) - 8);
        }
      }
      break;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < blocks; ++b, s += 20, d += kQk) {
        const float scale = HalfBitsToF32(LoadU16(s));
        const float min = HalfBitsToF32(LoadU16(s + 2));
        const uint8_t* qs = s + 4;
        for (int j = 0; j < kQk / 2; ++j) {
          d[j] = scale * static_cast<float>(qs[j] & 0x0f) + min;
          d[j + kQk / 2] = scale * static_cast<float>(qs[j] >> 4) + min;
        }
      }
      break;
    default:
      return absl::InternalError(absl::StrFormat("no dequantizer for %s", traits->name));
  }
  return absl::OkStatus();
}

}  // namespace cohost::runtime
