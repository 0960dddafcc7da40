// Block layouts follow ggml (little-endian, fp16 scales):
//   Q8_0 = {d; int8 q[32]}                 x = d q
//   Q4_0 = {d; uint8 qs[16]}               x = d (q - 8)
//   Q4_1 = {d; m; uint8 qs[16]}            x = d q + m
//   Q5_0 = {d; uint32 qh; uint8 qs[16]}    x = d (q - 16), bit 4 of q in qh
//   Q5_1 = {d; m; uint32 qh; uint8 qs[16]} x = d q + m
// In these, element j < 16 is the low nibble of qs[j], element j + 16 its
// high nibble; bit j of qh is element j's fifth bit.
// The K-quants hold 256 values in super-blocks of 8 sub-blocks of 32:
//   Q4_K = {d; dmin; uint8 scales[12]; uint8 qs[128]}
//   Q5_K = {d; dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]}
//     x = d sc_j q - dmin m_j, sc_j and m_j six bits each (KScaleMin);
//     sub-blocks 2i and 2i+1 are the low and high nibbles of qs[32i..32i+31],
//     and bits 2i and 2i+1 of qh[l] their fifth bits.
//   Q6_K = {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; d}
//     x = d sc_(l/16) (q - 32) with a scale per 16 values; each half of 128
//     values takes 64 bytes of ql (low nibbles, then high) and 32 of qh (two
//     bits for each of four quarters).
#include "runtime/loader/dequant.h"

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

constexpr int64_t kQk = 32;  // values per block of the 32-wide quant types

constexpr std::array<GgmlTypeTraits, 20> kTypes = {{
    {GgmlType::kF32, "F32", 1, 4, true},
    {GgmlType::kF16, "F16", 1, 2, true},
    {GgmlType::kBF16, "BF16", 1, 2, true},
    {GgmlType::kQ8_0, "Q8_0", 32, 34, true, {0, -1}},
    {GgmlType::kQ4_0, "Q4_0", 32, 18, true, {0, -1}},
    {GgmlType::kQ4_1, "Q4_1", 32, 20, true, {0, 2}},
    {GgmlType::kQ5_0, "Q5_0", 32, 22, true, {0, -1}},
    {GgmlType::kQ5_1, "Q5_1", 32, 24, true, {0, 2}},
    {GgmlType::kQ2_K, "Q2_K", 256, 84, true, {80, 82}},
    {GgmlType::kQ3_K, "Q3_K", 256, 110, true, {108, -1}},
    {GgmlType::kQ4_K, "Q4_K", 256, 144, true, {0, 2}},
    {GgmlType::kQ5_K, "Q5_K", 256, 176, true, {0, 2}},
    {GgmlType::kQ6_K, "Q6_K", 256, 210, true, {208, -1}},
    {GgmlType::kQ8_1, "Q8_1", 32, 36, false},
    {GgmlType::kQ8_K, "Q8_K", 256, 292, false},
    {GgmlType::kI8, "I8", 1, 1, false},
    {GgmlType::kI16, "I16", 1, 2, false},
    {GgmlType::kI32, "I32", 1, 4, false},
    {GgmlType::kI64, "I64", 1, 8, false},
    {GgmlType::kF64, "F64", 1, 8, false},
}};

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
float LoadHalf(const uint8_t* p) { return HalfBitsToF32(LoadU16(p)); }

struct KScale {
  int scale, min;
};
// Sub-block j's six-bit scale and min, from a K-quant's 12 bytes of scales:
// bytes 0-3 hold scales 0-3 and bytes 4-7 mins 0-3 in their low six bits;
// bytes 8-11 hold the low four bits of scales and mins 4-7, whose top two
// bits are the top bits of bytes 0-3 and 4-7.
KScale KScaleMin(const uint8_t* q, int j) {
  if (j < 4) return {q[j] & 63, q[j + 4] & 63};
  return {(q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)};
}

// One 32-value block of the 4- and 5-bit types: x = d q + m, q from the
// nibbles of qs and (5-bit) the bits of qh.
void Dequant32(float d, float m, const uint8_t* qs, const uint8_t* qh, float* y) {
  const uint32_t high = qh != nullptr ? LoadU32(qh) : 0;
  for (int j = 0; j < kQk / 2; ++j) {
    const int lo = (qs[j] & 0x0f) | static_cast<int>(((high >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((high >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + kQk / 2] = d * static_cast<float>(hi) + m;
  }
}

// A Q4_K (qh null) or Q5_K super-block at `s`, its 4-bit codes at `qs`.
void DequantK(const uint8_t* s, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = LoadHalf(s), dmin = LoadHalf(s + 2);
  const uint8_t* scales = s + 4;
  for (int j = 0; j < 8; ++j, y += kQk) {
    const KScale k = KScaleMin(scales, j);
    const float dj = d * static_cast<float>(k.scale), mj = dmin * static_cast<float>(k.min);
    const uint8_t* q = qs + ptrdiff_t{32} * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < kQk; ++l) {
      const int high = qh != nullptr ? ((qh[l] >> j) & 1) << 4 : 0;
      y[l] = dj * static_cast<float>(((q[l] >> shift) & 0x0f) | high) - mj;
    }
  }
}

// Q2_K = {uint8 scales[16]; uint8 qs[64]; d; dmin}: 16 sub-blocks of 16,
// x = d (sc & 15) q - dmin (sc >> 4), q two bits: each half of 128 values
// takes 32 bytes of qs, four 2-bit planes of 32 values each.
void DequantQ2K(const uint8_t* s, float* y) {
  const float d = LoadHalf(s + 80), dmin = LoadHalf(s + 82);
  const uint8_t* scales = s;
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = s + 16 + ptrdiff_t{32} * half;
    for (int plane = 0; plane < 4; ++plane) {
      for (int sub = 0; sub < 2; ++sub, y += 16) {
        const uint8_t sc = *scales++;
        const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          y[l] = dl * static_cast<float>((q[16 * sub + l] >> (2 * plane)) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K = {uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; d}: 16 sub-blocks
// of 16, x = d (sc - 32) (q - 4 unless the value's hmask bit is set), q two
// bits laid out as Q2_K's; the sixteen 6-bit scales are packed as low
// nibbles in bytes 0-7 and top two bits in bytes 8-11.
void DequantQ3K(const uint8_t* s, float* y) {
  const float d = LoadHalf(s + 108);
  const uint8_t* hmask = s;
  const uint8_t* packed = s + 96;
  int scale[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? packed[i] & 0x0f : packed[i - 8] >> 4;
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scale[i] = (low | (high << 4)) - 32;
  }
  int is = 0;
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = s + 32 + ptrdiff_t{32} * half;
    for (int plane = 0; plane < 4; ++plane) {
      const int bit = 4 * half + plane;  // the values' hmask bit
      for (int sub = 0; sub < 2; ++sub, y += 16) {
        const float dl = d * static_cast<float>(scale[is++]);
        for (int l = 0; l < 16; ++l) {
          const int v = ((q[16 * sub + l] >> (2 * plane)) & 3) -
                        (((hmask[16 * sub + l] >> bit) & 1) != 0 ? 0 : 4);
          y[l] = dl * static_cast<float>(v);
        }
      }
    }
  }
}

void DequantQ6K(const uint8_t* s, float* y) {
  const float d = LoadHalf(s + 208);
  const auto* scales = reinterpret_cast<const int8_t*>(s + 192);
  for (int half = 0; half < 2; ++half, y += 128) {
    const uint8_t* ql = s + ptrdiff_t{64} * half;
    const uint8_t* qh = s + 128 + ptrdiff_t{32} * half;
    const int8_t* sc = scales + ptrdiff_t{8} * half;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q0 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
      const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q0);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q1);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q2);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q3);
    }
  }
}

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

const std::string& DequantizableTypeNames() {
  static const std::string names = [] {
    std::string out;
    for (const GgmlTypeTraits& t : kTypes) {
      if (t.dequantizable) absl::StrAppend(&out, out.empty() ? "" : ", ", t.name);
    }
    return out;
  }();
  return names;
}

bool KeepsRowsAsStored(GgmlType type, int64_t cols) {
  const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(type));
  if (traits == nullptr || !traits->dequantizable) return false;
  if (type == GgmlType::kF16 || type == GgmlType::kBF16) return cols % 32 == 0;
  return traits->block_elems > 1;
}

absl::Status CheckBlockScales(GgmlType type, absl::Span<const uint8_t> src, int64_t first_block) {
  const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(type));
  if (traits == nullptr || traits->scale_at[0] < 0) return absl::OkStatus();  // no scales
  const auto size = static_cast<size_t>(traits->block_bytes);
  for (size_t at = 0, block = 0; at + size <= src.size(); at += size, ++block) {
    for (const int field : traits->scale_at) {
      if (field < 0) continue;
      // Exponent all ones: infinity or NaN.
      if ((LoadU16(src.data() + at + field) & 0x7c00u) == 0x7c00u) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s block %d has a non-finite scale", traits->name,
                            first_block + static_cast<int64_t>(block)));
      }
    }
  }
  return absl::OkStatus();
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
        "tensor type %s is not supported (supported: %s)", traits->name, DequantizableTypeNames()));
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
  RETURN_IF_ERROR(CheckBlockScales(type, src));
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
        const float scale = LoadHalf(s);
        Dequant32(scale, -8.f * scale, s + 2, nullptr, d);  // d q - 8 d = d (q - 8), exactly
      }
      break;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < blocks; ++b, s += 20, d += kQk) {
        Dequant32(LoadHalf(s), LoadHalf(s + 2), s + 4, nullptr, d);
      }
      break;
    case GgmlType::kQ5_0:
      for (int64_t b = 0; b < blocks; ++b, s += 22, d += kQk) {
        const float scale = LoadHalf(s);
        Dequant32(scale, -16.f * scale, s + 6, s + 2, d);  // exactly d (q - 16)
      }
      break;
    case GgmlType::kQ5_1:
      for (int64_t b = 0; b < blocks; ++b, s += 24, d += kQk) {
        Dequant32(LoadHalf(s), LoadHalf(s + 2), s + 8, s + 4, d);
      }
      break;
    case GgmlType::kQ4_K:
      for (int64_t b = 0; b < blocks; ++b, s += 144, d += 256) DequantK(s, nullptr, s + 16, d);
      break;
    case GgmlType::kQ5_K:
      for (int64_t b = 0; b < blocks; ++b, s += 176, d += 256) DequantK(s, s + 16, s + 48, d);
      break;
    case GgmlType::kQ6_K:
      for (int64_t b = 0; b < blocks; ++b, s += 210, d += 256) DequantQ6K(s, d);
      break;
    case GgmlType::kQ2_K:
      for (int64_t b = 0; b < blocks; ++b, s += 84, d += 256) DequantQ2K(s, d);
      break;
    case GgmlType::kQ3_K:
      for (int64_t b = 0; b < blocks; ++b, s += 110, d += 256) DequantQ3K(s, d);
      break;
    default:
      return absl::InternalError(absl::StrFormat("no dequantizer for %s", traits->name));
  }
  return absl::OkStatus();
}

}  // namespace cohost::runtime
