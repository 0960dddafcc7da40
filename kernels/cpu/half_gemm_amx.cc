// HalfGemm's AMX-BF16 path (half_gemm_amx.h).
//
// tdpbf16ps multiplies a tile of 16 rows x 32 bf16 values (its first
// operand) by a tile of 16 rows of 16 bf16 pairs (its second: row p holds
// values 2p and 2p + 1 of each of 16 columns), adding into 16 x 16 fp32 sums.
// The weights are the first operand: sixteen weight rows, k values apart,
// are a tile (bf16 ones read where they lie; f16 ones split a panel at a
// time into two bf16 matrices beside the task). The activations are the
// second: each block of sixteen activation rows is rounded to bf16 (for f16
// weights, split in two) and transposed once per call into such tiles, one
// for every 32 values of k. A sum tile then holds weight row x activation
// row, and is transposed on its way into c.
//
// A pool task takes 32 weight rows (two tiles) against every activation
// block, two blocks at a time: for bf16 weights four sum tiles and two tiles
// of each operand, the eight tile registers; for split f16 ones a weight
// tile at a time, its two halves against two blocks' two halves. The task's
// weights (32 x k x 2 bytes, twice for f16) stay in cache while the
// activations stream past them.
#include "half_gemm_amx.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "amx_tiles.h"
#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

bool HalfGemmAmxAvailable() {
  const CpuFeatures& f = HostCpuFeatures();
  return f.amx_bf16 && f.avx512bw && HostKernelCap() == KernelCap::kAll;
}

#if defined(__x86_64__)
namespace {

#define COHOST_AMX_BF16_TARGET \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,amx-tile,amx-bf16")))

// Rows of a tile register, and the fp32 sums in a row of a sum tile.
constexpr int64_t kTile = 16;
// bf16 values in a row of an operand tile (64 bytes).
constexpr int64_t kTileK = 32;
// Weight rows a pool task takes: two operand tiles.
constexpr int64_t kPanelRows = 2 * kTile;

// Every one of the eight tiles 16 rows of 64 bytes: sums 0-3, weights
// 4-5, activations 6-7 (TakeSplitSums puts the activations' lo halves in
// 2-3). Ensured at the start of each pool task (amx_tiles.h).
constexpr AmxTileConfig SixteenBySixtyFour() {
  AmxTileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.bytes_per_row[t] = 64;
    c.rows[t] = kTile;
  }
  return c;
}

// Sixteen activation rows' bf16 pairs for 32 values of k: word[p][j] holds
// values 2p and 2p + 1 of row j (the lower in the low half).
struct alignas(64) PackedTile {
  uint32_t word[kTile][kTile];
};

// Transposes sixteen rows of sixteen 32-bit lanes in place.
COHOST_AMX_BF16_TARGET void Transpose16(__m512i r[kTile]) {
  __m512i t[kTile];
  for (int i = 0; i < kTile; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < kTile; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Each 128-bit lane now holds a 4 x 4 block transposed; move the blocks.
  for (int h = 0; h < kTile; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + 4 + i], 0x88);
      t[h + 4 + i] = _mm512_shuffle_i32x4(r[h + i], r[h + 4 + i], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
  }
}

// Sixteen floats rounded as F32ToBf16 does (to nearest, ties to even; NaN
// stays NaN), each bf16 in the high half of its lane.
COHOST_AMX_BF16_TARGET __m512i RoundToBf16(__m512i bits) {
  const __m512i rounded = _mm512_add_epi32(
      bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                             _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1))));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(nan, rounded,
                                 _mm512_or_si512(bits, _mm512_set1_epi32(0x00400000)));
}

// Two sets of sixteen rounded lanes (RoundToBf16's) as sixteen bf16 pairs,
// x's first.
COHOST_AMX_BF16_TARGET __m512i Pairs(__m512i x, __m512i y) {
  const __m256i lo = _mm512_cvtepi32_epi16(_mm512_srli_epi32(x, 16));
  const __m256i hi = _mm512_cvtepi32_epi16(_mm512_srli_epi32(y, 16));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// The bf16 nearest each of sixteen floats (RoundToBf16's lanes), and in
// *rest each float less that bf16: exact in fp32, and itself a bf16 where
// the float was an f16 value. (Where the bf16 is infinite, the rest is not
// finite; split f16 products are then NaN: 0 x inf, as the lo parts of the
// weights meet the hi part of the activation.)
COHOST_AMX_BF16_TARGET __m512i Split(__m512 x, __m512* rest) {
  const __m512i rounded = RoundToBf16(_mm512_castps_si512(x));
  const __m512 hi = _mm512_castsi512_ps(
      _mm512_and_si512(rounded, _mm512_set1_epi32(static_cast<int>(0xffff0000))));
  *rest = _mm512_sub_ps(x, hi);
  return rounded;
}

// Activation rows [r0, r0 + rows) (rows <= 16; the block's others are
// zeros) as the k / 32 tiles of their block: at hi their bf16 values, and,
// kSplit, at lo the bf16 values of what is left of each (together within
// 2^-17 of the activation).
template <bool kSplit>
COHOST_AMX_BF16_TARGET void PackBlock(const float* a, int64_t r0, int64_t rows, int64_t k,
                                      PackedTile* hi, PackedTile* lo) {
  for (int64_t kc = 0; kc < k / kTileK; ++kc) {
    __m512i h[kTile], l[kTile];
    for (int64_t j = 0; j < kTile; ++j) {
      h[j] = l[j] = _mm512_setzero_si512();
      if (j >= rows) continue;
      const float* x = a + (r0 + j) * k + kc * kTileK;
      __m512 rest0, rest1;
      h[j] = Pairs(Split(_mm512_loadu_ps(x), &rest0), Split(_mm512_loadu_ps(x + 16), &rest1));
      if constexpr (kSplit) {
        l[j] =
            Pairs(RoundToBf16(_mm512_castps_si512(rest0)), RoundToBf16(_mm512_castps_si512(rest1)));
      }
    }
    Transpose16(h);
    for (int64_t p = 0; p < kTile; ++p) _mm512_store_si512(hi[kc].word[p], h[p]);
    if constexpr (kSplit) {
      Transpose16(l);
      for (int64_t p = 0; p < kTile; ++p) _mm512_store_si512(lo[kc].word[p], l[p]);
    }
  }
}

// `rows` rows of k f16 values at w as two bf16 matrices of the same shape
// whose sum they are, exactly, at hi and lo.
COHOST_AMX_BF16_TARGET void SplitF16Rows(const uint16_t* w, int64_t rows, int64_t k, uint16_t* hi,
                                         uint16_t* lo) {
  for (int64_t i = 0; i < rows * k; i += 16) {
    const __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    __m512 rest;
    const __m512i h = Split(x, &rest);
    const __m512i l = RoundToBf16(_mm512_castps_si512(rest));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i),
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i),
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32(l, 16)));
  }
}

// The sums of NA weight tiles (at w, sixteen rows k values apart) against
// NB activation blocks' tiles (b[0], b[1]) into sums[a * 2 + b].
template <int NA, int NB>
COHOST_AMX_BF16_TARGET void TakeSums(const uint16_t* w, int64_t k, const PackedTile* const* b,
                                     float (*sums)[kTile][kTile]) {
  TileMemoryBarrier();
  _tile_zero(0);
  if constexpr (NB == 2) _tile_zero(1);
  if constexpr (NA == 2) _tile_zero(2);
  if constexpr (NA == 2 && NB == 2) _tile_zero(3);
  const int64_t stride = k * static_cast<int64_t>(sizeof(uint16_t));
  for (int64_t kc = 0; kc < k / kTileK; ++kc) {
    _tile_loadd(4, w + kc * kTileK, stride);
    if constexpr (NA == 2) _tile_loadd(5, w + (kTile * k) + (kc * kTileK), stride);
    _tile_loadd(6, b[0] + kc, 64);
    if constexpr (NB == 2) _tile_loadd(7, b[1] + kc, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NA == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (NA == 2 && NB == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, sums[0], 64);
  if constexpr (NB == 2) _tile_stored(1, sums[1], 64);
  if constexpr (NA == 2) _tile_stored(2, sums[2], 64);
  if constexpr (NA == 2 && NB == 2) _tile_stored(3, sums[3], 64);
  TileMemoryBarrier();
}

// One weight tile split in two (w_hi + w_lo) against NB activation blocks
// split in two (b_hi + b_lo): three products a sum, the lo x lo one left
// out (at most 2^-16 of each product; a fourth multiply for it cost 4-20%
// of the rate, bench/RESULTS.md). Sums 0-1; the activations' lo tiles
// take registers 2-3, which TakeSums gives a second weight tile's sums.
template <int NB>
COHOST_AMX_BF16_TARGET void TakeSplitSums(const uint16_t* w_hi, const uint16_t* w_lo, int64_t k,
                                          const PackedTile* const* b_hi,
                                          const PackedTile* const* b_lo,
                                          float (*sums)[kTile][kTile]) {
  TileMemoryBarrier();
  _tile_zero(0);
  if constexpr (NB == 2) _tile_zero(1);
  const int64_t stride = k * static_cast<int64_t>(sizeof(uint16_t));
  for (int64_t kc = 0; kc < k / kTileK; ++kc) {
    _tile_loadd(4, w_hi + kc * kTileK, stride);
    _tile_loadd(5, w_lo + kc * kTileK, stride);
    _tile_loadd(6, b_hi[0] + kc, 64);
    _tile_loadd(2, b_lo[0] + kc, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(0, 5, 6);
    _tile_dpbf16ps(0, 4, 2);
    if constexpr (NB == 2) {
      _tile_loadd(7, b_hi[1] + kc, 64);
      _tile_loadd(3, b_lo[1] + kc, 64);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(1, 5, 7);
      _tile_dpbf16ps(1, 4, 3);
    }
  }
  _tile_stored(0, sums[0], 64);
  if constexpr (NB == 2) _tile_stored(1, sums[1], 64);
  TileMemoryBarrier();
}

// A sum tile (weight row i x activation row j) into c's rows r0.. (the
// first `rows`) at columns n0.. (the first `cols`), plus the bias.
COHOST_AMX_BF16_TARGET void StoreSums(const float (*sums)[kTile], const float* bias, int64_t n0,
                                      int64_t cols, int64_t r0, int64_t rows, float* c,
                                      int64_t ldc) {
  __m512i t[kTile];
  for (int64_t i = 0; i < kTile; ++i) t[i] = _mm512_load_si512(sums[i]);
  Transpose16(t);
  const auto keep = static_cast<__mmask16>((1u << cols) - 1);
  const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(keep, bias + n0) : _mm512_setzero_ps();
  for (int64_t j = 0; j < rows; ++j) {
    float* out = c + (r0 + j) * ldc + n0;
    const __m512 v = _mm512_castsi512_ps(t[j]);
    _mm512_mask_storeu_ps(out, keep, bias != nullptr ? _mm512_add_ps(v, b) : v);
  }
}

// The activations' tiles: every block's k / 32 at hi, and for split f16
// weights the blocks' lo parts at lo (else null).
struct PackedActivations {
  const PackedTile* hi;
  const PackedTile* lo;
};

// Weight rows [n0, n0 + rows) (rows <= 32, whole tiles at w, and for split
// f16 weights their lo parts at w_lo) against every block.
template <int NA, bool kSplit>
COHOST_AMX_BF16_TARGET void PanelAgainstBlocks(const uint16_t* w, const uint16_t* w_lo,
                                               int64_t rows, const float* bias, int64_t n0,
                                               const PackedActivations& act, int64_t m, int64_t k,
                                               float* c, int64_t ldc) {
  const int64_t blocks = (m + kTile - 1) / kTile, per = k / kTileK;
  alignas(64) float sums[4][kTile][kTile];
  for (int64_t jb = 0; jb < blocks; jb += 2) {
    const PackedTile* hi[2] = {act.hi + jb * per, act.hi + (jb + 1) * per};
    const bool two = jb + 1 < blocks;
    if constexpr (kSplit) {
      const PackedTile* lo[2] = {act.lo + jb * per, act.lo + (jb + 1) * per};
      for (int64_t ta = 0; ta < NA; ++ta) {
        const int64_t at = ta * kTile * k;
        if (two) {
          TakeSplitSums<2>(w + at, w_lo + at, k, hi, lo, sums + ta * 2);
        } else {
          TakeSplitSums<1>(w + at, w_lo + at, k, hi, lo, sums + ta * 2);
        }
      }
    } else if (two) {
      TakeSums<NA, 2>(w, k, hi, sums);
    } else {
      TakeSums<NA, 1>(w, k, hi, sums);
    }
    for (int64_t ta = 0; ta < NA; ++ta) {
      for (int64_t tb = 0; tb < (two ? 2 : 1); ++tb) {
        const int64_t r0 = (jb + tb) * kTile;
        StoreSums(sums[ta * 2 + tb], bias, n0 + ta * kTile, std::min(kTile, rows - ta * kTile), r0,
                  std::min(kTile, m - r0), c, ldc);
      }
    }
  }
}

template <bool kSplit>
void Multiply(const float* a, const uint16_t* w, const float* bias, int64_t m, int64_t n, int64_t k,
              float* c, int64_t ldc, ThreadPool& pool) {
  const int64_t blocks = (m + kTile - 1) / kTile, per_block = k / kTileK;
  // The caller's thread owns these; workers write their blocks, then read all.
  // (Workers see the buffers through these pointers: a thread_local named
  // inside the lambda would be the worker's own.) They keep the largest
  // call's size: m x k x 2 bytes, twice for f16 weights (3 MB for 512 rows
  // of k = 1536).
  thread_local std::vector<PackedTile> hi_tiles, lo_tiles;
  hi_tiles.resize(static_cast<size_t>(blocks * per_block));
  if constexpr (kSplit) lo_tiles.resize(hi_tiles.size());
  PackedTile* const hi = hi_tiles.data();
  PackedTile* const lo = kSplit ? lo_tiles.data() : nullptr;
  const PackedActivations act{hi, lo};
  pool.ParallelFor(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t jb = begin; jb < end; ++jb) {
      PackBlock<kSplit>(a, jb * kTile, std::min(kTile, m - jb * kTile), k, hi + jb * per_block,
                        kSplit ? lo + jb * per_block : nullptr);
    }
  });
  const int64_t panels = (n + kPanelRows - 1) / kPanelRows;
  pool.ParallelFor(panels, 1, [&](int64_t begin, int64_t end) {
    static constexpr AmxTileConfig kConfig = SixteenBySixtyFour();
    EnsureTileConfig(kConfig);
    // The task's weights where they are not read in place: a last panel's
    // rows short of a whole tile beside zeros (so that no tile load reads
    // past the matrix), or f16 rows split in two.
    thread_local std::vector<uint16_t> panel_hi, panel_lo;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n0 = t * kPanelRows, rows = std::min(kPanelRows, n - n0);
      const int64_t whole = (rows + kTile - 1) / kTile * kTile;
      const uint16_t* panel = w + n0 * k;
      const uint16_t* panel_low = nullptr;
      if (kSplit || rows != whole) {
        // The rows, then zeros to the whole tile (only those rows zeroed).
        const auto filled = static_cast<size_t>(rows * k), size = static_cast<size_t>(whole * k);
        panel_hi.resize(size);
        std::fill(panel_hi.begin() + static_cast<ptrdiff_t>(filled), panel_hi.end(), 0);
        if constexpr (kSplit) {
          panel_lo.resize(size);
          std::fill(panel_lo.begin() + static_cast<ptrdiff_t>(filled), panel_lo.end(), 0);
          SplitF16Rows(panel, rows, k, panel_hi.data(), panel_lo.data());
          panel_low = panel_lo.data();
        } else {
          std::memcpy(panel_hi.data(), panel, filled * sizeof(uint16_t));
        }
        panel = panel_hi.data();
      }
      if (rows > kTile) {
        PanelAgainstBlocks<2, kSplit>(panel, panel_low, rows, bias, n0, act, m, k, c, ldc);
      } else {
        PanelAgainstBlocks<1, kSplit>(panel, panel_low, rows, bias, n0, act, m, k, c, ldc);
      }
    }
  });
}

}  // namespace

void HalfGemmAmx(const float* a, WeightRef w, const float* bias, int64_t m, int64_t n, int64_t k,
                 float* c, int64_t ldc, ThreadPool& pool) {
  const auto* base = static_cast<const uint16_t*>(w.data);
  if (w.format == WeightFormat::kF16) {
    Multiply<true>(a, base, bias, m, n, k, c, ldc, pool);
  } else {
    Multiply<false>(a, base, bias, m, n, k, c, ldc, pool);
  }
}

#else

void HalfGemmAmx(const float*, WeightRef, const float*, int64_t, int64_t, int64_t, float*, int64_t,
                 ThreadPool&) {}

#endif

}  // namespace cohost::kernels::cpu
