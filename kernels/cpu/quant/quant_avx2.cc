// The AVX2 quantized kernels. Each function carries its own target
// attribute (no file-wide -mavx2), so that nothing in this file, inline
// library code included, runs on a CPU without AVX2: Avx2QuantKernels hands
// the table out only when cpuid says the CPU has AVX2, FMA and F16C.

#include <immintrin.h>

#include <cmath>

#include "cpu_features.h"
#include "quant_kernels.h"

#define COHOST_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace cohost::kernels::cpu {
namespace {

COHOST_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

COHOST_AVX2 inline int32_t HorizontalSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Eight int32 lanes of sum(x * y) over 32 signed bytes, exact for |x| <= 128
// and |y| <= 127 (the activations never hold -128): maddubs needs one operand
// unsigned, so |x| and y with x's sign.
COHOST_AVX2 inline __m256i DotI8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

// Sixteen bytes of nibbles -> 32 bytes: the low nibbles, then the high ones
// (value i is the low nibble of byte i, value i + 16 its high nibble).
COHOST_AVX2 inline __m256i Nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

COHOST_AVX2 void QuantizeQ8A(const float* x, int64_t k, BlockQ8A* out) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < k / kQuantBlock; ++b, x += kQuantBlock) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + static_cast<ptrdiff_t>(8 * i));
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      // Multiply, then round to nearest even: the scalar table's nearbyint.
      q[i] = _mm256_cvtps_epi32(
          _mm256_round_ps(_mm256_mul_ps(v[i], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    const __m256i sum =
        _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    // int32 -> int16 -> int8 packs work within 128-bit lanes; the permute
    // puts the 32 values back in order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(q01, q23);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), bytes);
    out[b].d = d;
    out[b].s = d * static_cast<float>(HorizontalSum(sum));
  }
}

COHOST_AVX2 float DotQ80(const BlockQ8_0* w, const BlockQ8A* a, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(w[b].d) * a[b].d);
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(DotI8(x, y)), acc);
  }
  return HorizontalSum(acc);
}

COHOST_AVX2 float DotQ40(const BlockQ4_0* w, const BlockQ8A* a, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x = _mm256_sub_epi8(Nibbles(w[b].qs), _mm256_set1_epi8(8));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(w[b].d) * a[b].d);
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(DotI8(x, y)), acc);
  }
  return HorizontalSum(acc);
}

COHOST_AVX2 float DotQ41(const BlockQ4_1* w, const BlockQ8A* a, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x = Nibbles(w[b].qs);  // unsigned 0..15
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(w[b].d) * a[b].d);
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc);
    mins += _cvtsh_ss(w[b].m) * a[b].s;
  }
  return HorizontalSum(acc) + mins;
}

// Four rows at once: each weight block is loaded, unpacked and its scale
// converted once, and each row's accumulator sees exactly the operations of
// the single-row kernels above, in the same order.

// One block of signed weights `x` (scale d) into the four rows' accumulators.
COHOST_AVX2 inline void Accumulate4(__m256i x, float d, const BlockQ8A* a, int64_t a_stride,
                                    int64_t b, __m256* acc) {
  for (int r = 0; r < 4; ++r) {
    const BlockQ8A& ab = a[r * a_stride + b];
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.qs));
    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ab.d), _mm256_cvtepi32_ps(DotI8(x, y)), acc[r]);
  }
}

COHOST_AVX2 void Dot4Q80(const BlockQ8_0* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                         float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b) {
    Accumulate4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs)), _cvtsh_ss(w[b].d), a,
                a_stride, b, acc);
  }
  for (int r = 0; r < 4; ++r) out[r] = HorizontalSum(acc[r]);
}

COHOST_AVX2 void Dot4Q40(const BlockQ4_0* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                         float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b) {
    Accumulate4(_mm256_sub_epi8(Nibbles(w[b].qs), _mm256_set1_epi8(8)), _cvtsh_ss(w[b].d), a,
                a_stride, b, acc);
  }
  for (int r = 0; r < 4; ++r) out[r] = HorizontalSum(acc[r]);
}

COHOST_AVX2 void Dot4Q41(const BlockQ4_1* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                         float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  float mins[4] = {0, 0, 0, 0};
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x = Nibbles(w[b].qs);
    const float d = _cvtsh_ss(w[b].d), m = _cvtsh_ss(w[b].m);
    for (int r = 0; r < 4; ++r) {
      const BlockQ8A& ab = a[r * a_stride + b];
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.qs));
      const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ab.d), _mm256_cvtepi32_ps(dot), acc[r]);
      mins[r] += m * ab.s;
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = HorizontalSum(acc[r]) + mins[r];
}

}  // namespace

const QuantKernels* Avx2QuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c) return nullptr;
  static const QuantKernels k{"avx2", QuantizeQ8A, DotQ80,  DotQ40,
                              DotQ41, Dot4Q80,     Dot4Q40, Dot4Q41};
  return &k;
}

}  // namespace cohost::kernels::cpu
