// What paged attention does with one page of one KV head (attention.cc):
// the scores of a query row against the page's K rows, and the sum of its V
// rows weighted by their probabilities, over rows of fp32, fp16 or bf16
// widened to fp32 as they load. A portable version (vectorized by the
// compiler where it can) and one of AVX2 + FMA + F16C intrinsics; within
// each, a page of any dtype gives the bits fp32 pages holding the same
// values give.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cohost/kernels/dtype.h"

namespace cohost::kernels::cpu {

// Element i of a K or V row of T, as fp32 (exact).
template <DType T>
__attribute__((always_inline)) inline float KvAt(const void* row, int64_t i) {
  if constexpr (T == DType::kF32) {
    return static_cast<const float*>(row)[i];
  } else if constexpr (T == DType::kF16) {
    return F16ToF32(static_cast<const uint16_t*>(row)[i]);
  } else {
    return Bf16ToF32(static_cast<const uint16_t*>(row)[i]);
  }
}

// The row of T at element `offset` of `pages`.
template <DType T>
__attribute__((always_inline)) inline const void* KvRow(const void* pages, int64_t offset) {
  return static_cast<const char*>(pages) + offset * static_cast<int64_t>(DTypeSize(T));
}

// Query rows taken together against one page (a prefill's consecutive
// tokens of one head): each K and V element is loaded, and widened, once for
// all of them.
constexpr int32_t kTileRows = 4;

// Both versions' interface. Rows are `stride` elements apart from k (or v).
//   Scores:     scores[r] = scale * (q . k_r), r < rows.
//   Accumulate: acc[d] += p[r] * v_r[d] for r = 0, 1, ... in turn, d < n.
//   ScoresTile, AccumulateTile: the same for query rows j < num_q (at most
//     kTileRows), scores and p of row j at [j * pitch]; every (query, key)
//     pair gets exactly the arithmetic Scores and Accumulate give it.
template <DType T>
struct PortableRows {
  // Eight independent partial sums: SIMD lanes for the compiler (a single
  // accumulator forces a serial add chain), and shorter rounding chains.
  __attribute__((always_inline)) static void Scores(const float* q, const void* k, int64_t stride,
                                                    int32_t rows, int32_t n, float scale,
                                                    float* scores) {
    for (int32_t r = 0; r < rows; ++r) {
      const void* kr = KvRow<T>(k, r * stride);
      float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      int32_t d = 0;
      for (; d + 8 <= n; d += 8) {
        for (int j = 0; j < 8; ++j) lanes[j] += q[d + j] * KvAt<T>(kr, d + j);
      }
      float s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      for (; d < n; ++d) s += q[d] * KvAt<T>(kr, d);
      scores[r] = s * scale;
    }
  }
  __attribute__((always_inline)) static void Accumulate(const float* p, const void* v,
                                                        int64_t stride, int32_t rows, int32_t n,
                                                        float* acc) {
    for (int32_t r = 0; r < rows; ++r) {
      const void* vr = KvRow<T>(v, r * stride);
      for (int32_t d = 0; d < n; ++d) acc[d] += p[r] * KvAt<T>(vr, d);
    }
  }
  __attribute__((always_inline)) static void ScoresTile(const float* const* q, int32_t num_q,
                                                        const void* k, int64_t stride, int32_t rows,
                                                        int32_t n, float scale, float* scores,
                                                        int32_t pitch) {
    for (int32_t j = 0; j < num_q; ++j) Scores(q[j], k, stride, rows, n, scale, scores + j * pitch);
  }
  __attribute__((always_inline)) static void AccumulateTile(const float* p, int32_t pitch,
                                                            int32_t num_q, const void* v,
                                                            int64_t stride, int32_t rows, int32_t n,
                                                            float* const* acc) {
    for (int32_t j = 0; j < num_q; ++j) Accumulate(p + j * pitch, v, stride, rows, n, acc[j]);
  }
};

#if defined(__x86_64__)
#define COHOST_ATTENTION_TARGET __attribute__((target("avx2,fma,f16c")))

// Eight elements of a row of T from element i, widened to fp32.
template <DType T>
COHOST_ATTENTION_TARGET inline __m256 Load8(const void* row, int32_t i) {
  if constexpr (T == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i));
    if constexpr (T == DType::kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// Scores four rows at a time (four independent FMA chains, one shared load
// of q, one horizontal reduction for all four); Accumulate keeps 32 of acc
// in registers across the page's rows. Tails (n not a multiple of 8) are
// fused explicitly, since whether `s += a * b` fuses would depend on T.
template <DType T>
struct Avx2Rows {
  COHOST_ATTENTION_TARGET static void Scores(const float* q, const void* k, int64_t stride,
                                             int32_t rows, int32_t n, float scale, float* scores) {
    for (int32_t r = 0; r < rows; r += 4) {
      // Past the last row, repeat it; those sums are dropped.
      const void* kr[4];
      for (int j = 0; j < 4; ++j) kr[j] = KvRow<T>(k, std::min(r + j, rows - 1) * stride);
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int32_t d = 0;
      for (; d + 8 <= n; d += 8) {
        const __m256 q8 = _mm256_loadu_ps(q + d);
        a0 = _mm256_fmadd_ps(q8, Load8<T>(kr[0], d), a0);
        a1 = _mm256_fmadd_ps(q8, Load8<T>(kr[1], d), a1);
        a2 = _mm256_fmadd_ps(q8, Load8<T>(kr[2], d), a2);
        a3 = _mm256_fmadd_ps(q8, Load8<T>(kr[3], d), a3);
      }
      // [sum a0, sum a1, sum a2, sum a3].
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
      alignas(16) float sums[4];
      _mm_store_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
      for (int j = 0; j < 4 && r + j < rows; ++j) {
        float s = sums[j];
        for (int32_t t = d; t < n; ++t) s = std::fma(q[t], KvAt<T>(kr[j], t), s);
        scores[r + j] = s * scale;
      }
    }
  }

  COHOST_ATTENTION_TARGET static void Accumulate(const float* p, const void* v, int64_t stride,
                                                 int32_t rows, int32_t n, float* acc) {
    int32_t d = 0;
    for (; d + 32 <= n; d += 32) {
      __m256 c0 = _mm256_loadu_ps(acc + d), c1 = _mm256_loadu_ps(acc + d + 8);
      __m256 c2 = _mm256_loadu_ps(acc + d + 16), c3 = _mm256_loadu_ps(acc + d + 24);
      for (int32_t r = 0; r < rows; ++r) {
        const void* vr = KvRow<T>(v, r * stride);
        const __m256 pr = _mm256_set1_ps(p[r]);
        c0 = _mm256_fmadd_ps(pr, Load8<T>(vr, d), c0);
        c1 = _mm256_fmadd_ps(pr, Load8<T>(vr, d + 8), c1);
        c2 = _mm256_fmadd_ps(pr, Load8<T>(vr, d + 16), c2);
        c3 = _mm256_fmadd_ps(pr, Load8<T>(vr, d + 24), c3);
      }
      _mm256_storeu_ps(acc + d, c0);
      _mm256_storeu_ps(acc + d + 8, c1);
      _mm256_storeu_ps(acc + d + 16, c2);
      _mm256_storeu_ps(acc + d + 24, c3);
    }
    for (; d + 8 <= n; d += 8) {
      __m256 c = _mm256_loadu_ps(acc + d);
      for (int32_t r = 0; r < rows; ++r) {
        c = _mm256_fmadd_ps(_mm256_set1_ps(p[r]), Load8<T>(KvRow<T>(v, r * stride), d), c);
      }
      _mm256_storeu_ps(acc + d, c);
    }
    for (; d < n; ++d) {
      float c = acc[d];
      for (int32_t r = 0; r < rows; ++r) c = std::fma(p[r], KvAt<T>(KvRow<T>(v, r * stride), d), c);
      acc[d] = c;
    }
  }

  // One key row at a time against four query rows (slots past num_q repeat
  // row 0; dropped): four FMA chains sharing each widened K chunk, reduced
  // by the tree Scores uses.
  COHOST_ATTENTION_TARGET static void ScoresTile(const float* const* q, int32_t num_q,
                                                 const void* k, int64_t stride, int32_t rows,
                                                 int32_t n, float scale, float* scores,
                                                 int32_t pitch) {
    if (num_q == 1) return Scores(q[0], k, stride, rows, n, scale, scores);
    const float* qs[kTileRows];
    for (int j = 0; j < kTileRows; ++j) qs[j] = q[j < num_q ? j : 0];
    for (int32_t r = 0; r < rows; ++r) {
      const void* kr = KvRow<T>(k, r * stride);
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int32_t d = 0;
      for (; d + 8 <= n; d += 8) {
        const __m256 k8 = Load8<T>(kr, d);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qs[0] + d), k8, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qs[1] + d), k8, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(qs[2] + d), k8, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(qs[3] + d), k8, a3);
      }
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
      alignas(16) float sums[4];
      _mm_store_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
      for (int32_t j = 0; j < num_q; ++j) {
        float s = sums[j];
        for (int32_t t = d; t < n; ++t) s = std::fma(qs[j][t], KvAt<T>(kr, t), s);
        scores[j * pitch + r] = s * scale;
      }
    }
  }

  // Eight of each query row's acc at a time in registers; each V chunk
  // widened once for all rows.
  COHOST_ATTENTION_TARGET static void AccumulateTile(const float* p, int32_t pitch, int32_t num_q,
                                                     const void* v, int64_t stride, int32_t rows,
                                                     int32_t n, float* const* acc) {
    switch (num_q) {
      case 1:
        return Accumulate(p, v, stride, rows, n, acc[0]);
      case 2:
        return AccumulateN<2>(p, pitch, v, stride, rows, n, acc);
      case 3:
        return AccumulateN<3>(p, pitch, v, stride, rows, n, acc);
      default:
        return AccumulateN<4>(p, pitch, v, stride, rows, n, acc);
    }
  }

  template <int NQ>
  COHOST_ATTENTION_TARGET static void AccumulateN(const float* p, int32_t pitch, const void* v,
                                                  int64_t stride, int32_t rows, int32_t n,
                                                  float* const* acc) {
    int32_t d = 0;
    for (; d + 8 <= n; d += 8) {
      __m256 c[NQ];
      for (int j = 0; j < NQ; ++j) c[j] = _mm256_loadu_ps(acc[j] + d);
      for (int32_t r = 0; r < rows; ++r) {
        const __m256 v8 = Load8<T>(KvRow<T>(v, r * stride), d);
        for (int j = 0; j < NQ; ++j) {
          c[j] = _mm256_fmadd_ps(_mm256_set1_ps(p[j * pitch + r]), v8, c[j]);
        }
      }
      for (int j = 0; j < NQ; ++j) _mm256_storeu_ps(acc[j] + d, c[j]);
    }
    for (; d < n; ++d) {
      for (int j = 0; j < NQ; ++j) {
        float c = acc[j][d];
        for (int32_t r = 0; r < rows; ++r) {
          c = std::fma(p[j * pitch + r], KvAt<T>(KvRow<T>(v, r * stride), d), c);
        }
        acc[j][d] = c;
      }
    }
  }
};
#undef COHOST_ATTENTION_TARGET
#endif

}  // namespace cohost::kernels::cpu
