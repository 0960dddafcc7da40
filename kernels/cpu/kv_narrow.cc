// KV rows from fp32 to the cache's element type: a scalar version, and one
// with F16C conversions and AVX2 bit arithmetic where cpuid has them.
#include "kv_narrow.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

namespace {

void NarrowScalar(const float* src, int32_t n, DType dtype, void* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  auto* h = static_cast<uint16_t*>(dst);
  if (dtype == DType::kF16) {
    for (int32_t i = 0; i < n; ++i) h[i] = F32ToF16(src[i]);
  } else {
    for (int32_t i = 0; i < n; ++i) h[i] = F32ToBf16(src[i]);
  }
}

#if defined(__x86_64__)
// bf16 of eight floats, rounded to nearest even; a NaN stays a quiet NaN:
// F32ToBf16, eight lanes at a time.
__attribute__((target("avx2,f16c"))) __m128i Bf16Of8(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);  // 16-bit values in 32-bit lanes
  // Pack the low halves of the eight lanes: 0..3 from the low 128 bits, 4..7 from the high.
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

__attribute__((target("avx2,f16c"))) void NarrowX86(const float* src, int32_t n, DType dtype,
                                                    void* dst) {
  if (dtype == DType::kF32) return NarrowScalar(src, n, dtype, dst);
  auto* h = static_cast<uint16_t*>(dst);
  int32_t i = 0;
  if (dtype == DType::kF16) {
    for (; i + 8 <= n; i += 8) {
      const __m128i x = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), x);
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), Bf16Of8(_mm256_loadu_ps(src + i)));
    }
  }
  NarrowScalar(src + i, n - i, dtype, h + i);
}
#endif

}  // namespace

KvNarrowFn ScalarKvNarrow() { return NarrowScalar; }

KvNarrowFn HostKvNarrow() {
#if defined(__x86_64__)
  const CpuFeatures& f = HostCpuFeatures();
  if (f.avx2 && f.f16c) return NarrowX86;
#endif
  return NarrowScalar;
}

}  // namespace cohost::kernels::cpu
