// The portable quantized kernels (the reference every vectorized table is
// tested against) and the choice of table.

#include <algorithm>
#include <cmath>
#include <vector>

#include "cohost/kernels/dtype.h"
#include "cpu_features.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

void QuantizeQ8A(const float* x, int64_t k, BlockQ8A* out) {
  for (int64_t b = 0; b < k / kQuantBlock; ++b, x += kQuantBlock) {
    float amax = 0;
    for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    int32_t sum[2] = {0, 0};
    for (int i = 0; i < kQuantBlock; ++i) {
      // Finite inputs give |v| <= 127; anything else (NaN) is taken as 0.
      const float v = std::nearbyint(x[i] * id);
      const auto q = static_cast<int8_t>(std::fabs(v) <= 127.f ? v : 0.f);
      out[b].qs[i] = q;
      sum[i / 16] += q;
    }
    out[b].d = d;
    out[b].s = d * static_cast<float>(sum[0] + sum[1]);
    out[b].sum16[0] = static_cast<int16_t>(sum[0]);
    out[b].sum16[1] = static_cast<int16_t>(sum[1]);
  }
}

// One 32-value block of weights, decoded: the integer codes the sum
// multiplies (offsets applied), an integer scale per 16 values (Q6_K's,
// Q2_K's, Q3_K's; 1 elsewhere), and the fp32 factors of the block's integer
// sum (times the activations' d) and of its min term (0 without one): the
// activations' s, or for Q2_K the integer mins per 16 values (m16) against
// the activations' per-16 sums.
struct SubBlock {
  int8_t q[kQuantBlock];
  int32_t sc16[2] = {1, 1};
  int32_t m16[2] = {0, 0};
  float scale = 0;
  float min = 0;
};

// Low and high nibbles of 16 bytes as values 0-15 and 16-31, plus `offset`
// and the fifth bits of the little-endian `qh` where given.
void Nibbles(const uint8_t* qs, const uint8_t* qh, int offset, int8_t* q) {
  uint32_t high = 0;
  if (qh != nullptr) {
    high = static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) |
           (static_cast<uint32_t>(qh[2]) << 16) | (static_cast<uint32_t>(qh[3]) << 24);
  }
  for (int i = 0; i < kQuantBlock / 2; ++i) {
    q[i] = static_cast<int8_t>((qs[i] & 0xf) + static_cast<int>(((high >> i) & 1u) << 4) + offset);
    q[i + 16] = static_cast<int8_t>((qs[i] >> 4) +
                                    static_cast<int>(((high >> (i + 16)) & 1u) << 4) + offset);
  }
}

SubBlock Decode(const BlockQ8_0& w, int /*j*/) {
  SubBlock s;
  std::copy(std::begin(w.qs), std::end(w.qs), s.q);
  s.scale = F16ToF32(w.d);
  return s;
}
SubBlock Decode(const BlockQ4_0& w, int /*j*/) {
  SubBlock s;
  Nibbles(w.qs, nullptr, -8, s.q);
  s.scale = F16ToF32(w.d);
  return s;
}
SubBlock Decode(const BlockQ4_1& w, int /*j*/) {
  SubBlock s;
  Nibbles(w.qs, nullptr, 0, s.q);
  s.scale = F16ToF32(w.d);
  s.min = F16ToF32(w.m);
  return s;
}
SubBlock Decode(const BlockQ5_0& w, int /*j*/) {
  SubBlock s;
  Nibbles(w.qs, w.qh, -16, s.q);
  s.scale = F16ToF32(w.d);
  return s;
}
SubBlock Decode(const BlockQ5_1& w, int /*j*/) {
  SubBlock s;
  Nibbles(w.qs, w.qh, 0, s.q);
  s.scale = F16ToF32(w.d);
  s.min = F16ToF32(w.m);
  return s;
}
// sum (d sc q - dmin m)(da qa) = d sc da sum(q qa) - dmin m s.
template <typename Block>
SubBlock DecodeK(const Block& w, int j, const uint8_t* qh) {
  SubBlock s;
  const uint8_t* qs = w.qs + 32 * (j / 2);
  const int shift = 4 * (j % 2);
  for (int l = 0; l < kQuantBlock; ++l) {
    const int high = qh != nullptr ? ((qh[l] >> j) & 1) << 4 : 0;
    s.q[l] = static_cast<int8_t>(((qs[l] >> shift) & 0xf) | high);
  }
  const KScaleMin k = UnpackKScaleMin(w.scales, j);
  s.scale = F16ToF32(w.d) * static_cast<float>(k.scale);
  s.min = -(F16ToF32(w.dmin) * static_cast<float>(k.min));
  return s;
}
SubBlock Decode(const BlockQ4_K& w, int j) { return DecodeK(w, j, nullptr); }
SubBlock Decode(const BlockQ5_K& w, int j) { return DecodeK(w, j, w.qh); }
SubBlock Decode(const BlockQ6_K& w, int j) {
  SubBlock s;
  const ptrdiff_t h = j / 4, c = j % 4;
  const uint8_t* ql = w.ql + 64 * h + 32 * (c & 1);
  const uint8_t* qh = w.qh + 32 * h;
  for (int l = 0; l < kQuantBlock; ++l) {
    const int low = (ql[l] >> (4 * (c >> 1))) & 0xf;
    s.q[l] = static_cast<int8_t>((low | (((qh[l] >> (2 * c)) & 3) << 4)) - 32);
  }
  // The scales are signed by the format.
  s.sc16[0] = w.scales[8 * h + 2 * c];      // NOLINT(bugprone-signed-char-misuse)
  s.sc16[1] = w.scales[8 * h + 2 * c + 1];  // NOLINT(bugprone-signed-char-misuse)
  s.scale = F16ToF32(w.d);
  return s;
}

// Sub-block j of a Q2_K / Q3_K super-block: half j / 4, plane j % 4.
SubBlock Decode(const BlockQ2_K& w, int j) {
  SubBlock s;
  const uint8_t* qs = w.qs + ptrdiff_t{32} * (j / 4);
  const int shift = 2 * (j % 4);
  for (int l = 0; l < kQuantBlock; ++l) s.q[l] = static_cast<int8_t>((qs[l] >> shift) & 3);
  for (int h = 0; h < 2; ++h) {
    s.sc16[h] = w.scales[2 * j + h] & 0x0f;
    s.m16[h] = w.scales[2 * j + h] >> 4;
  }
  s.scale = F16ToF32(w.d);
  s.min = -F16ToF32(w.dmin);
  return s;
}
SubBlock Decode(const BlockQ3_K& w, int j) {
  SubBlock s;
  const uint8_t* qs = w.qs + ptrdiff_t{32} * (j / 4);
  const int shift = 2 * (j % 4);
  for (int l = 0; l < kQuantBlock; ++l) {
    const int high = (w.hmask[l] >> j) & 1;
    s.q[l] = static_cast<int8_t>(((qs[l] >> shift) & 3) - (high != 0 ? 0 : 4));
  }
  s.sc16[0] = Q3KScale(w.scales, 2 * j);
  s.sc16[1] = Q3KScale(w.scales, 2 * j + 1);
  s.scale = F16ToF32(w.d);
  return s;
}

// The tile's arithmetic, spelled out: Decode each weight row's sub-blocks
// once, then every activation row through them.
template <typename Block>
void Tile(const void* wv, size_t row_bytes, int rows, const BlockQ8A* a, int64_t m, int64_t nb,
          float* c, int64_t ldc) {
  std::vector<float> acc(static_cast<size_t>(m));
  for (int i = 0; i < rows; ++i) {
    const auto* w = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(wv) + i * row_bytes);
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t b = 0; b < nb; ++b) {
      const SubBlock s = Decode(w[b / kSubBlocks<Block>], static_cast<int>(b % kSubBlocks<Block>));
      for (int64_t r = 0; r < m; ++r) {
        const BlockQ8A& ab = a[r * nb + b];
        int32_t lo = 0, hi = 0;
        for (int l = 0; l < 16; ++l) lo += s.q[l] * ab.qs[l];
        for (int l = 16; l < kQuantBlock; ++l) hi += s.q[l] * ab.qs[l];
        const int32_t isum = s.sc16[0] * lo + s.sc16[1] * hi;
        float& out = acc[static_cast<size_t>(r)];
        out = std::fma(static_cast<float>(isum), s.scale * ab.d, out);
        if constexpr (kHasMin<Block>) out = std::fma(s.min, ab.s, out);
        if constexpr (kHasMin16<Block>) {
          const int32_t msum = s.m16[0] * ab.sum16[0] + s.m16[1] * ab.sum16[1];
          out = std::fma(s.min, ab.d * static_cast<float>(msum), out);
        }
      }
    }
    for (int64_t r = 0; r < m; ++r) c[r * ldc + i] = acc[static_cast<size_t>(r)];
  }
}

// value = (scale * sc16) * q + min: the loader's order for every format
// (sc16 is 1 but for Q6_K, Q2_K and Q3_K, whose loader multiplies d by the
// scale first; Q2_K's min is min * m16 per half, the loader's dmin * m).
template <typename Block>
void DequantizeRowOf(const void* wv, int64_t k, float* out) {
  const auto* w = static_cast<const Block*>(wv);
  for (int64_t b = 0; b < k / kQuantBlock; ++b, out += kQuantBlock) {
    const SubBlock s = Decode(w[b / kSubBlocks<Block>], static_cast<int>(b % kSubBlocks<Block>));
    for (int i = 0; i < kQuantBlock; ++i) {
      const int h = i < 16 ? 0 : 1;
      const float scale = s.scale * static_cast<float>(s.sc16[h]);
      const float min = kHasMin16<Block> ? s.min * static_cast<float>(s.m16[h]) : s.min;
      out[i] = scale * static_cast<float>(s.q[i]) + min;
    }
  }
}

}  // namespace

void DequantizeRow(WeightFormat f, const void* row, int64_t k, float* out) {
  switch (f) {
    case WeightFormat::kQ8_0:
      return DequantizeRowOf<BlockQ8_0>(row, k, out);
    case WeightFormat::kQ4_0:
      return DequantizeRowOf<BlockQ4_0>(row, k, out);
    case WeightFormat::kQ4_1:
      return DequantizeRowOf<BlockQ4_1>(row, k, out);
    case WeightFormat::kQ5_0:
      return DequantizeRowOf<BlockQ5_0>(row, k, out);
    case WeightFormat::kQ5_1:
      return DequantizeRowOf<BlockQ5_1>(row, k, out);
    case WeightFormat::kQ4_K:
      return DequantizeRowOf<BlockQ4_K>(row, k, out);
    case WeightFormat::kQ5_K:
      return DequantizeRowOf<BlockQ5_K>(row, k, out);
    case WeightFormat::kQ6_K:
      return DequantizeRowOf<BlockQ6_K>(row, k, out);
    case WeightFormat::kQ2_K:
      return DequantizeRowOf<BlockQ2_K>(row, k, out);
    case WeightFormat::kQ3_K:
      return DequantizeRowOf<BlockQ3_K>(row, k, out);
    case WeightFormat::kF16:
      for (int64_t i = 0; i < k; ++i) out[i] = F16ToF32(static_cast<const uint16_t*>(row)[i]);
      return;
    case WeightFormat::kBF16:
      for (int64_t i = 0; i < k; ++i) out[i] = Bf16ToF32(static_cast<const uint16_t*>(row)[i]);
      return;
    case WeightFormat::kDense:
      break;
  }
}

const QuantKernels& ScalarQuantKernels() {
  static const QuantKernels k{
      "scalar",
      kTileCols,
      QuantizeQ8A,
      {nullptr, Tile<BlockQ8_0>, Tile<BlockQ4_0>, Tile<BlockQ4_1>, Tile<BlockQ5_0>, Tile<BlockQ5_1>,
       Tile<BlockQ4_K>, Tile<BlockQ5_K>, Tile<BlockQ6_K>, Tile<BlockQ2_K>, Tile<BlockQ3_K>},
      {}};
  return k;
}

const QuantKernels& SelectedQuantKernels() {
  static const QuantKernels& chosen = []() -> const QuantKernels& {
    const KernelCap cap = HostKernelCap();
    if (cap == KernelCap::kScalar) return ScalarQuantKernels();
    if (const QuantKernels* amx = AmxQuantKernels(); amx != nullptr && cap == KernelCap::kAll) {
      return *amx;
    }
    if (const QuantKernels* vnni = Avx512VnniQuantKernels();
        vnni != nullptr && cap != KernelCap::kAvx2) {
      return *vnni;
    }
    if (const QuantKernels* avx2 = Avx2QuantKernels()) return *avx2;
    return ScalarQuantKernels();
  }();
  return chosen;
}

}  // namespace cohost::kernels::cpu
