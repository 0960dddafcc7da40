// exp of eight floats at a time (AVX2 + FMA), for what calls expf per
// element: attention's softmax (attention.cc) and SiLU (ops.cc); and of
// sixteen (AVX-512F), each lane by the same operations as Exp8's, so with
// the same bits.
// exp(t) = 2^k * e^f with k = round(t log2 e) and f = t - k ln 2 (in two
// parts, exactly representable), e^f by a degree-6 polynomial on
// |f| <= ln 2 / 2: within 3 ulp of expf for t <= 0 (tested on a sweep,
// cpu_ops_test.cc), 0 where expf's result is below FLT_MIN, NaN for NaN.
// Only t <= 0: larger t overflows the exponent bits.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace cohost::kernels::cpu {

__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 t) {
  const __m256 kLog2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 kLn2Hi = _mm256_set1_ps(0.693359375f);
  const __m256 kLn2Lo = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 underflow = _mm256_cmp_ps(t, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  t = _mm256_max_ps(_mm256_set1_ps(-87.33654f), t);  // a NaN stays NaN (max returns t)
  const __m256 k =
      _mm256_round_ps(_mm256_mul_ps(t, kLog2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_fnmadd_ps(k, kLn2Hi, t);
  f = _mm256_fnmadd_ps(k, kLn2Lo, f);
  // e^f ~ 1 + f + f^2/2! + ... + f^6/6!, Horner.
  __m256 p = _mm256_set1_ps(1.f / 720);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  // 2^k: k in [-126, 0] here, so k + 127 is a normal exponent.
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  return _mm256_andnot_ps(underflow, e);
}

__attribute__((target("avx2,fma,avx512f"))) inline __m512 Exp16(__m512 t) {
  const __m512 kLog2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 kLn2Hi = _mm512_set1_ps(0.693359375f);
  const __m512 kLn2Lo = _mm512_set1_ps(-2.12194440e-4f);
  const __mmask16 underflow = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
  t = _mm512_max_ps(_mm512_set1_ps(-87.33654f), t);  // a NaN stays NaN (max returns t)
  const __m512 k =
      _mm512_roundscale_ps(_mm512_mul_ps(t, kLog2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(k, kLn2Hi, t);
  f = _mm512_fnmadd_ps(k, kLn2Lo, f);
  __m512 p = _mm512_set1_ps(1.f / 720);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
  const __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), e);
}

}  // namespace cohost::kernels::cpu
#endif
