// Avx2Rows (attention_rows.h) on 512-bit registers, for CPUs with AVX-512F,
// so that a tile of query rows (a decode step's query heads of one KV
// group, or consecutive tokens of a prefill) widens each K and V element
// once for all its rows with half the instructions. The arithmetic is
// Avx2Rows's, pair for pair and element for element, so the two give the
// same bits:
// - a score is one eight-lane FMA chain over the head's dims, then
//   SumLanes4's tree and the scale; a register holds two keys' chains (lanes
//   0-7 and 8-15), and the tree runs on both halves at once by in-lane
//   swaps, which add the same pairs in the same order;
// - each element of acc is one FMA chain over the page's rows in order,
//   sixteen elements a register.
// For head dims that are multiples of 16 (attention.cc falls back to
// Avx2Rows for others).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "attention_rows.h"
#include "cohost/kernels/dtype.h"

namespace cohost::kernels::cpu {

#define COHOST_ATTENTION512_TARGET __attribute__((target("avx2,fma,f16c,avx512f")))

// The head dims Avx512Rows takes: whole registers of sixteen.
inline bool Avx512RowsFit(int32_t head_dim) { return head_dim > 0 && head_dim % 16 == 0; }

// Elements [i, i + 16) of a row of T, widened to fp32.
template <DType T>
COHOST_ATTENTION512_TARGET inline __m512 Load16(const void* row, int32_t i) {
  if constexpr (T == DType::kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + i));
    if constexpr (T == DType::kF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// Elements [i, i + 8) of row a in lanes 0-7 and of row b in lanes 8-15.
template <DType T>
COHOST_ATTENTION512_TARGET inline __m512 LoadPair8(const void* a, const void* b, int32_t i) {
  if constexpr (T == DType::kF32) {
    const __m256d lo = _mm256_castps_pd(_mm256_loadu_ps(static_cast<const float*>(a) + i));
    const __m256d hi = _mm256_castps_pd(_mm256_loadu_ps(static_cast<const float*>(b) + i));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(lo), hi, 1));
  } else {
    const auto* pa = reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(a) + i);
    const auto* pb = reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(b) + i);
    const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(pa)),
                                              _mm_loadu_si128(pb), 1);
    if constexpr (T == DType::kF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// SumLanes4's tree on each half of x: lane 0 gets ((x0 + x1) + (x2 + x3)) +
// ((x4 + x5) + (x6 + x7)), lane 8 the same of x8..x15 (the other lanes are
// not used).
COHOST_ATTENTION512_TARGET inline __m512 SumHalves(__m512 x) {
  x = _mm512_add_ps(x, _mm512_permute_ps(x, 0xb1));           // + the neighbour lane
  x = _mm512_add_ps(x, _mm512_permute_ps(x, 0x4e));           // + the neighbour pair
  return _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xb1));  // + the other quad
}

template <DType T>
struct Avx512Rows {
  // Query rows j < num_q (at most kTileRows) against the page's key rows,
  // two keys a register: kPairs pairs at a time, so 2 * kPairs * NQ chains
  // run side by side.
  COHOST_ATTENTION512_TARGET static void ScoresTile(const float* const* q, int32_t num_q,
                                                    const void* k, int64_t stride, int32_t rows,
                                                    int32_t n, float scale, float* scores,
                                                    int32_t pitch) {
    switch (num_q) {
      case 1:
        return ScoresN<1, 4>(q, k, stride, rows, n, scale, scores, pitch);
      case 2:
        return ScoresN<2, 2>(q, k, stride, rows, n, scale, scores, pitch);
      case 3:
        return ScoresN<3, 2>(q, k, stride, rows, n, scale, scores, pitch);
      default:
        return ScoresN<4, 2>(q, k, stride, rows, n, scale, scores, pitch);
    }
  }

  // acc[j][d] += p[j * pitch + r] * v_r[d] for r = 0, 1, ... in turn.
  COHOST_ATTENTION512_TARGET static void AccumulateTile(const float* p, int32_t pitch,
                                                        int32_t num_q, const void* v,
                                                        int64_t stride, int32_t rows, int32_t n,
                                                        float* const* acc) {
    switch (num_q) {
      case 1:
        return AccumulateN<1>(p, pitch, v, stride, rows, n, acc);
      case 2:
        return AccumulateN<2>(p, pitch, v, stride, rows, n, acc);
      case 3:
        return AccumulateN<3>(p, pitch, v, stride, rows, n, acc);
      default:
        return AccumulateN<4>(p, pitch, v, stride, rows, n, acc);
    }
  }

  // Key slots past `rows` repeat the last row; their scores are dropped.
  template <int NQ, int kPairs>
  COHOST_ATTENTION512_TARGET static void ScoresN(const float* const* q, const void* k,
                                                 int64_t stride, int32_t rows, int32_t n,
                                                 float scale, float* scores, int32_t pitch) {
    constexpr int kKeys = 2 * kPairs;
    const __m512 s = _mm512_set1_ps(scale);
    for (int32_t r = 0; r < rows; r += kKeys) {
      const void* kr[kKeys];
      for (int i = 0; i < kKeys; ++i) kr[i] = KvRow<T>(k, std::min(r + i, rows - 1) * stride);
      __m512 a[NQ][kPairs];
      for (auto& row : a) {
        for (__m512& x : row) x = _mm512_setzero_ps();
      }
      for (int32_t d = 0; d < n; d += 8) {
        __m512 kk[kPairs];
        for (int i = 0; i < kPairs; ++i) kk[i] = LoadPair8<T>(kr[2 * i], kr[2 * i + 1], d);
        for (int j = 0; j < NQ; ++j) {
          // q's eight dims in both halves.
          const __m512 q8 =
              _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(q[j] + d))));
          for (int i = 0; i < kPairs; ++i) a[j][i] = _mm512_fmadd_ps(q8, kk[i], a[j][i]);
        }
      }
      for (int j = 0; j < NQ; ++j) {
        for (int i = 0; i < kPairs; ++i) {
          const __m512 sums = _mm512_mul_ps(SumHalves(a[j][i]), s);
          const int32_t key = r + 2 * i;
          if (key < rows) scores[j * pitch + key] = _mm512_cvtss_f32(sums);
          if (key + 1 < rows) {
            scores[j * pitch + key + 1] = _mm_cvtss_f32(_mm512_extractf32x4_ps(sums, 2));
          }
        }
      }
    }
  }

  // NQ query rows' acc: kChunks registers of each row's acc across the
  // page's rows, then fewer for what is left of n.
  template <int NQ>
  COHOST_ATTENTION512_TARGET static void AccumulateN(const float* p, int32_t pitch, const void* v,
                                                     int64_t stride, int32_t rows, int32_t n,
                                                     float* const* acc) {
    constexpr int kChunks = NQ == 1 ? 8 : 4;
    int32_t d = AccumulateChunks<NQ, kChunks>(p, pitch, v, stride, rows, n, acc, 0);
    if constexpr (kChunks > 4) d = AccumulateChunks<NQ, 4>(p, pitch, v, stride, rows, n, acc, d);
    d = AccumulateChunks<NQ, 2>(p, pitch, v, stride, rows, n, acc, d);
    AccumulateChunks<NQ, 1>(p, pitch, v, stride, rows, n, acc, d);
  }

  // From d while kChunks registers of sixteen fit in n; returns where it
  // stopped.
  template <int NQ, int kChunks>
  COHOST_ATTENTION512_TARGET static int32_t AccumulateChunks(const float* p, int32_t pitch,
                                                             const void* v, int64_t stride,
                                                             int32_t rows, int32_t n,
                                                             float* const* acc, int32_t d) {
    for (; d + 16 * kChunks <= n; d += 16 * kChunks) {
      __m512 c[NQ][kChunks];
      for (int j = 0; j < NQ; ++j) {
        for (int i = 0; i < kChunks; ++i) c[j][i] = _mm512_loadu_ps(acc[j] + d + 16 * i);
      }
      for (int32_t r = 0; r < rows; ++r) {
        const void* vr = KvRow<T>(v, r * stride);
        __m512 v16[kChunks];
        for (int i = 0; i < kChunks; ++i) v16[i] = Load16<T>(vr, d + 16 * i);
        for (int j = 0; j < NQ; ++j) {
          const __m512 pj = _mm512_set1_ps(p[j * pitch + r]);
          for (int i = 0; i < kChunks; ++i) c[j][i] = _mm512_fmadd_ps(pj, v16[i], c[j][i]);
        }
      }
      for (int j = 0; j < NQ; ++j) {
        for (int i = 0; i < kChunks; ++i) _mm512_storeu_ps(acc[j] + d + 16 * i, c[j][i]);
      }
    }
    return d;
  }
};

#undef COHOST_ATTENTION512_TARGET

}  // namespace cohost::kernels::cpu

#endif
