// Avx2Rows (attention_rows.h) on 512-bit registers, for CPUs with AVX-512F,
// so that a tile of query rows (a decode step's query heads of one KV
// group, or consecutive tokens of a prefill) widens each K and V element
// once for all its rows with half the instructions. The arithmetic is
// Avx2Rows's, pair for pair and element for element, so the two give the
// same bits:
// - a score is one eight-lane FMA chain over the head's dims, then
//   SumLanes4's tree and the scale; a register holds two keys' chains (lanes
//   0-7 and 8-15), and the trees of eight keys (four registers) run
//   together by shuffles that add the same pairs in the same order, leaving
//   the eight scores in one register;
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

// The scores of eight keys from one query row's four pair registers (keys
// 2i and 2i + 1 in register i's lanes 0-7 and 8-15), in key order, each by
// SumLanes4's tree on its half: ((x0 + x1) + (x2 + x3)) + ((x4 + x5) +
// (x6 + x7)), the same additions in the same order, the four registers
// reduced together.
COHOST_ATTENTION512_TARGET inline __m256 SumPairs4(__m512 x, __m512 y, __m512 z, __m512 w) {
  // + the neighbour lane: [x0+x1, x2+x3, y0+y1, y2+y3] in each 128-bit lane.
  const __m512 xy = _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x88), _mm512_shuffle_ps(x, y, 0xdd));
  const __m512 zw = _mm512_add_ps(_mm512_shuffle_ps(z, w, 0x88), _mm512_shuffle_ps(z, w, 0xdd));
  // + the neighbour pair: each register's quad sum, x y z w in each lane.
  const __m512 q = _mm512_add_ps(_mm512_shuffle_ps(xy, zw, 0x88), _mm512_shuffle_ps(xy, zw, 0xdd));
  // + the other quad: lanes 0-3 keys 0, 2, 4, 6; lanes 8-11 keys 1, 3, 5, 7.
  const __m512 h = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, 0xb1));
  const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps256(_mm512_permutexvar_ps(order, h));
}

// The same for four keys from two pair registers: [k0, k1, k2, k3].
COHOST_ATTENTION512_TARGET inline __m128 SumPairs2(__m512 x, __m512 y) {
  const __m512 xy = _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x88), _mm512_shuffle_ps(x, y, 0xdd));
  // [x's quad sum, y's, x's, y's] in each 128-bit lane.
  const __m512 q = _mm512_add_ps(_mm512_shuffle_ps(xy, xy, 0x88), _mm512_shuffle_ps(xy, xy, 0xdd));
  // Lanes 0-1 keys 0, 2; lanes 8-9 keys 1, 3.
  const __m512 h = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, 0xb1));
  const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(order, h));
}

template <DType T>
struct Avx512Rows {
  // Query rows j < num_q (at most kTileRows) against the page's key rows,
  // two keys a register.
  COHOST_ATTENTION512_TARGET static void ScoresTile(const float* const* q, int32_t num_q,
                                                    const void* k, int64_t stride, int32_t rows,
                                                    int32_t n, float scale, float* scores,
                                                    int32_t pitch) {
    // Up to four rows eight keys a step, more four keys a step: 16 chains
    // and 16 accumulators at most.
    switch (num_q) {
      case 1:
        return ScoresN<1, 4>(q, k, stride, rows, n, scale, scores, pitch);
      case 2:
        return ScoresN<2, 4>(q, k, stride, rows, n, scale, scores, pitch);
      case 3:
        return ScoresN<3, 4>(q, k, stride, rows, n, scale, scores, pitch);
      case 4:
        return ScoresN<4, 4>(q, k, stride, rows, n, scale, scores, pitch);
      case 5:
        return ScoresN<5, 2>(q, k, stride, rows, n, scale, scores, pitch);
      case 6:
        return ScoresN<6, 2>(q, k, stride, rows, n, scale, scores, pitch);
      case 7:
        return ScoresN<7, 2>(q, k, stride, rows, n, scale, scores, pitch);
      default:
        return ScoresN<8, 2>(q, k, stride, rows, n, scale, scores, pitch);
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
      case 4:
        return AccumulateN<4>(p, pitch, v, stride, rows, n, acc);
      case 5:
        return AccumulateN<5>(p, pitch, v, stride, rows, n, acc);
      case 6:
        return AccumulateN<6>(p, pitch, v, stride, rows, n, acc);
      case 7:
        return AccumulateN<7>(p, pitch, v, stride, rows, n, acc);
      default:
        return AccumulateN<8>(p, pitch, v, stride, rows, n, acc);
    }
  }

  // Key slots past `rows` repeat the last row; their scores are dropped.
  // 2 * kPairs keys a step (eight or four): kPairs pair registers a row,
  // kPairs * NQ chains side by side.
  template <int NQ, int kPairs>
  COHOST_ATTENTION512_TARGET static void ScoresN(const float* const* q, const void* k,
                                                 int64_t stride, int32_t rows, int32_t n,
                                                 float scale, float* scores, int32_t pitch) {
    static_assert(kPairs == 2 || kPairs == 4);
    constexpr int kKeys = 2 * kPairs;
    const __m256 s = _mm256_set1_ps(scale);
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
      const __mmask16 keep = static_cast<__mmask16>((1u << std::min<int32_t>(kKeys, rows - r)) - 1);
      for (int j = 0; j < NQ; ++j) {
        __m512 sums;
        if constexpr (kPairs == 4) {
          sums = _mm512_zextps256_ps512(
              _mm256_mul_ps(SumPairs4(a[j][0], a[j][1], a[j][2], a[j][3]), s));
        } else {
          sums = _mm512_zextps128_ps512(
              _mm_mul_ps(SumPairs2(a[j][0], a[j][1]), _mm256_castps256_ps128(s)));
        }
        _mm512_mask_storeu_ps(scores + j * pitch + r, keep, sums);
      }
    }
  }

  // NQ query rows' acc: kChunks registers of each row's acc across the
  // page's rows, then fewer for what is left of n.
  template <int NQ>
  COHOST_ATTENTION512_TARGET static void AccumulateN(const float* p, int32_t pitch, const void* v,
                                                     int64_t stride, int32_t rows, int32_t n,
                                                     float* const* acc) {
    constexpr int kChunks = NQ == 1 ? 8 : NQ <= 4 ? 4 : 2;
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
