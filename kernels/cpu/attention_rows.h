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

// Query rows taken together against one page (a decode token's query heads
// of a GQA group, or a prefill's consecutive tokens): each K and V element
// is loaded, and widened, once for all of them (Avx2Rows: once for each
// group of four, as many as its sixteen registers hold).
constexpr int32_t kTileRows = 8;

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

// The sum of a's lanes by SumLanes4's tree: ((l0 + l1) + (l2 + l3)) +
// ((l4 + l5) + (l6 + l7)).
COHOST_ATTENTION_TARGET inline float SumLanes(__m256 a) {
  const __m256 pairs = _mm256_hadd_ps(a, a);
  const __m256 quads = _mm256_hadd_ps(pairs, pairs);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(quads), _mm256_extractf128_ps(quads, 1)));
}

// [sum of a[0]'s lanes, ..., sum of a[3]'s], each by the same tree:
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
COHOST_ATTENTION_TARGET inline void SumLanes4(const __m256* a, float* sums) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  _mm_storeu_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// The same tree for eight vectors at once: [sum of a[0]'s lanes, ..., sum of
// a[7]'s], in one vector (the lanes' pairs, then pairs of pairs, then the
// two halves: what SumLanes4 adds, in the same order).
COHOST_ATTENTION_TARGET inline __m256 SumLanes8(const __m256* a) {
  const __m256 x0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 x4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(x0123, x4567, 0x20),
                       _mm256_permute2f128_ps(x0123, x4567, 0x31));
}

// Every (query row, key row) pair gets one eight-lane FMA chain over the
// head's dims and SumLanes4's tree, and every element of acc one chain over
// the page's rows in order: the bits do not depend on how many chains run
// side by side. Eight run at once (FMA's latency times its throughput), so
// the loops are bound by the FMA units, not by one chain's latency: Scores
// takes eight key rows at a time (one load of q for all), ScoresTile two key
// rows per query row, and the accumulations keep eight chunks of acc (64
// values, split over the tile's query rows) in registers across the page's
// rows. Tails (n not a multiple of 8) are fused
// explicitly, since whether `s += a * b` fuses would depend on T.
template <DType T>
struct Avx2Rows {
  // One query row against eight key rows at a time (slots past `rows`
  // repeat the last row; dropped).
  COHOST_ATTENTION_TARGET static void Scores(const float* q, const void* k, int64_t stride,
                                             int32_t rows, int32_t n, float scale, float* scores) {
    constexpr int kKeys = 8;
    for (int32_t r = 0; r < rows; r += kKeys) {
      const void* kr[kKeys];
      for (int j = 0; j < kKeys; ++j) kr[j] = KvRow<T>(k, std::min(r + j, rows - 1) * stride);
      __m256 a[kKeys];
      for (__m256& x : a) x = _mm256_setzero_ps();
      int32_t d = 0;
      for (; d + 8 <= n; d += 8) {
        const __m256 q8 = _mm256_loadu_ps(q + d);
        for (int j = 0; j < kKeys; ++j) a[j] = _mm256_fmadd_ps(q8, Load8<T>(kr[j], d), a[j]);
      }
      const __m256 sums = SumLanes8(a);
      if (d == n && r + kKeys <= rows) {  // no tail: eight scores at once
        _mm256_storeu_ps(scores + r, _mm256_mul_ps(sums, _mm256_set1_ps(scale)));
        continue;
      }
      alignas(32) float lane[kKeys];
      _mm256_store_ps(lane, sums);
      for (int j = 0; j < kKeys && r + j < rows; ++j) {
        float s = lane[j];
        for (int32_t t = d; t < n; ++t) s = std::fma(q[t], KvAt<T>(kr[j], t), s);
        scores[r + j] = s * scale;
      }
    }
  }

  COHOST_ATTENTION_TARGET static void Accumulate(const float* p, const void* v, int64_t stride,
                                                 int32_t rows, int32_t n, float* acc) {
    AccumulateN<1>(p, 0, v, stride, rows, n, &acc);
  }

  // Query rows a group: each group's rows share the widened K and V chunks.
  static constexpr int kGroup = 4;

  COHOST_ATTENTION_TARGET static void ScoresTile(const float* const* q, int32_t num_q,
                                                 const void* k, int64_t stride, int32_t rows,
                                                 int32_t n, float scale, float* scores,
                                                 int32_t pitch) {
    for (int32_t j = 0; j < num_q; j += kGroup) {
      ScoresGroup(q + j, std::min<int32_t>(kGroup, num_q - j), k, stride, rows, n, scale,
                  scores + static_cast<int64_t>(j) * pitch, pitch);
    }
  }

  // Two key rows at a time against four query rows (slots past num_q repeat
  // row 0, and a second key past `rows` repeats the first; dropped): eight
  // FMA chains sharing each widened K chunk.
  COHOST_ATTENTION_TARGET static void ScoresGroup(const float* const* q, int32_t num_q,
                                                  const void* k, int64_t stride, int32_t rows,
                                                  int32_t n, float scale, float* scores,
                                                  int32_t pitch) {
    if (num_q == 1) return Scores(q[0], k, stride, rows, n, scale, scores);
    const float* qs[kGroup];
    for (int j = 0; j < kGroup; ++j) qs[j] = q[j < num_q ? j : 0];
    for (int32_t r = 0; r < rows; r += 2) {
      const void* kr[2] = {KvRow<T>(k, r * stride),
                           KvRow<T>(k, std::min(r + 1, rows - 1) * stride)};
      // a[key * kGroup + j]: query row j against key r + key.
      __m256 a[2 * kGroup];
      for (__m256& x : a) x = _mm256_setzero_ps();
      int32_t d = 0;
      for (; d + 8 <= n; d += 8) {
        const __m256 k0 = Load8<T>(kr[0], d), k1 = Load8<T>(kr[1], d);
        for (int j = 0; j < kGroup; ++j) {
          const __m256 q8 = _mm256_loadu_ps(qs[j] + d);
          a[j] = _mm256_fmadd_ps(q8, k0, a[j]);
          a[kGroup + j] = _mm256_fmadd_ps(q8, k1, a[kGroup + j]);
        }
      }
      // Lane key * kGroup + j, as in a.
      alignas(32) float lane[2 * kGroup];
      _mm256_store_ps(lane, _mm256_mul_ps(SumLanes8(a), _mm256_set1_ps(scale)));
      if (d == n) {  // no tail: the scaled sums are the scores
        for (int32_t j = 0; j < num_q; ++j) {
          scores[j * pitch + r] = lane[j];
          if (r + 1 < rows) scores[j * pitch + r + 1] = lane[kGroup + j];
        }
        continue;
      }
      _mm256_store_ps(lane, SumLanes8(a));
      for (int key = 0; key < 2 && r + key < rows; ++key) {
        for (int32_t j = 0; j < num_q; ++j) {
          float s = lane[key * kGroup + j];
          for (int32_t t = d; t < n; ++t) s = std::fma(qs[j][t], KvAt<T>(kr[key], t), s);
          scores[j * pitch + r + key] = s * scale;
        }
      }
    }
  }

  COHOST_ATTENTION_TARGET static void AccumulateTile(const float* p, int32_t pitch, int32_t num_q,
                                                     const void* v, int64_t stride, int32_t rows,
                                                     int32_t n, float* const* acc) {
    for (int32_t j = 0; j < num_q; j += kGroup) {
      const float* pj = p + static_cast<int64_t>(j) * pitch;
      switch (std::min<int32_t>(kGroup, num_q - j)) {
        case 1:
          AccumulateN<1>(pj, pitch, v, stride, rows, n, acc + j);
          break;
        case 2:
          AccumulateN<2>(pj, pitch, v, stride, rows, n, acc + j);
          break;
        case 3:
          AccumulateN<3>(pj, pitch, v, stride, rows, n, acc + j);
          break;
        default:
          AccumulateN<4>(pj, pitch, v, stride, rows, n, acc + j);
      }
    }
  }

  // NQ query rows' acc (p of row j at [j * pitch]): eight 8-element
  // accumulators in registers (8 / NQ chunks of each row's acc), then fewer
  // for what is left of n; each V chunk widened once for all rows.
  template <int NQ>
  COHOST_ATTENTION_TARGET static void AccumulateN(const float* p, int32_t pitch, const void* v,
                                                  int64_t stride, int32_t rows, int32_t n,
                                                  float* const* acc) {
    constexpr int kChunks = 8 / NQ;
    int32_t d = 0;
    d = AccumulateNChunks<NQ, kChunks>(p, pitch, v, stride, rows, n, acc, d);
    if constexpr (kChunks > 2)
      d = AccumulateNChunks<NQ, kChunks / 2>(p, pitch, v, stride, rows, n, acc, d);
    if constexpr (kChunks > 1) d = AccumulateNChunks<NQ, 1>(p, pitch, v, stride, rows, n, acc, d);
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

  // acc[j][d..] += p[j * pitch + r] * v_r[d..] over the rows, kChunks
  // eight-element chunks of each row's acc at a time, from d while a whole
  // group fits in n. Returns where it stopped.
  template <int NQ, int kChunks>
  COHOST_ATTENTION_TARGET static int32_t AccumulateNChunks(const float* p, int32_t pitch,
                                                           const void* v, int64_t stride,
                                                           int32_t rows, int32_t n,
                                                           float* const* acc, int32_t d) {
    for (; d + 8 * kChunks <= n; d += 8 * kChunks) {
      __m256 c[NQ][kChunks];
      for (int j = 0; j < NQ; ++j) {
        for (int i = 0; i < kChunks; ++i) c[j][i] = _mm256_loadu_ps(acc[j] + d + 8 * i);
      }
      for (int32_t r = 0; r < rows; ++r) {
        const void* vr = KvRow<T>(v, r * stride);
        __m256 v8[kChunks];
        for (int i = 0; i < kChunks; ++i) v8[i] = Load8<T>(vr, d + 8 * i);
        for (int j = 0; j < NQ; ++j) {
          const __m256 pj = _mm256_set1_ps(p[j * pitch + r]);
          for (int i = 0; i < kChunks; ++i) c[j][i] = _mm256_fmadd_ps(pj, v8[i], c[j][i]);
        }
      }
      for (int j = 0; j < NQ; ++j) {
        for (int i = 0; i < kChunks; ++i) _mm256_storeu_ps(acc[j] + d + 8 * i, c[j][i]);
      }
    }
    return d;
  }
};
#undef COHOST_ATTENTION_TARGET
#endif

}  // namespace cohost::kernels::cpu
