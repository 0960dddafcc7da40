// HalfGemm's AVX512-BF16 path (half_gemm_bf16.h).
//
// The activations are rounded to bf16 512 rows a pass (kRoundedRows), into
// the caller's scratch (a row is 32 values a register: k is a multiple of
// 32). A pool task then takes sixteen weight rows (one 64-byte line of c)
// against every activation row of the pass, four weight rows by four
// activation rows at a time: sixteen registers of sums, one per output,
// each fed a vdpbf16ps per 32 values of k, and then halved together
// (Reduce16), four outputs of a row to a 128-bit lane. The task's weight
// rows (16 x k x 2 bytes) stay in cache while the activations stream past
// them, and four activation rows (8 KB at k = 1024) stay near while the
// task's four groups of weight rows meet them. One activation row (a decode
// step, bound by reading the weights from memory) takes the task's sixteen
// weight rows at once instead (RowBlock), asking for the next task's lines
// as it goes; each output is summed the same way either way.
#include "half_gemm_bf16.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

bool HalfGemmBf16DotsAvailable() {
  const CpuFeatures& f = HostCpuFeatures();
  return f.avx512bf16 && f.avx512bw && HostKernelCap() >= KernelCap::kAvx512;
}

#if defined(__x86_64__)
namespace {

#define COHOST_BF16_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512bf16")))

// bf16 values a register holds: the step along k.
constexpr int64_t kStep = 32;
// Activation rows and weight rows a block takes: sixteen sums.
constexpr int kBlockRows = 4;
constexpr int kBlockCols = 4;
// Weight rows a pool task takes: one 64-byte line of c.
constexpr int64_t kColumnTile = 16;
// Activation rows rounded and multiplied a pass: the caller's scratch stays
// at kRoundedRows x k bf16 values (14 MB at k = 14336), for the weights
// read once more each pass (a 2,048-token prefill: four passes).
constexpr int64_t kRoundedRows = 512;

// rows x k floats (k a multiple of 32) as the nearest bf16 values, ties to
// even (vcvtne2ps2bf16: subnormals to zero, NaN stays NaN).
COHOST_BF16_TARGET void RoundRows(const float* a, int64_t rows, int64_t k, uint16_t* out) {
  for (int64_t i = 0; i < rows * k; i += kStep) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(a + i));
    _mm512_storeu_si512(out + i, reinterpret_cast<const __m512i&>(v));
  }
}

// Sixteen sums, acc[4 * col + row], each halved four times (lanes l + 8,
// then l + 4, l + 2, l + 1: every output the same tree), into one register
// whose 128-bit lane r holds row r's four columns.
COHOST_BF16_TARGET __m512 Reduce16(const __m512 acc[16]) {
  __m512 s1[8], s2[4], s3[2];
  // Lanes 0..7 of each sum plus 8..15: two sums a register.
  for (int64_t p = 0; p < 8; ++p) {
    const __m512 x = acc[2 * p], y = acc[2 * p + 1];
    s1[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xee));
  }
  // 0..3 plus 4..7: four sums a register, sum 4q + c in 128-bit lane c.
  for (int64_t q = 0; q < 4; ++q) {
    const __m512 x = s1[2 * q], y = s1[2 * q + 1];
    s2[q] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
  }
  // 0, 1 plus 2, 3: lane c's first pair from sum 8u + c, its second from 8u + 4 + c.
  for (int64_t u = 0; u < 2; ++u) {
    const __m512d x = _mm512_castps_pd(s2[2 * u]), y = _mm512_castps_pd(s2[2 * u + 1]);
    s3[u] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                          _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // 0 plus 1: lane c holds sums c, 4 + c, 8 + c and 12 + c, that is row c's
  // four columns.
  return _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// c[r * ldc + j] (+ bias[j]) for the block's kRows rounded activation rows
// (a, k apart) and its `cols` weight rows w[j] (the others point at real
// rows and are not stored).
template <int kRows>
COHOST_BF16_TARGET void Block(const uint16_t* a, const uint16_t* const w[kBlockCols], int cols,
                              int64_t k, const float* bias, float* c, int64_t ldc) {
  __m512 acc[kBlockRows * kBlockCols];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += kStep) {
    __m512i x[kRows];
    for (int r = 0; r < kRows; ++r) x[r] = _mm512_loadu_si512(a + r * k + i);
    for (int j = 0; j < kBlockCols; ++j) {
      const __m512i wv = _mm512_loadu_si512(w[j] + i);
      for (int r = 0; r < kRows; ++r) {
        acc[kBlockRows * j + r] =
            _mm512_dpbf16_ps(acc[kBlockRows * j + r], reinterpret_cast<const __m512bh&>(x[r]),
                             reinterpret_cast<const __m512bh&>(wv));
      }
    }
  }
  alignas(64) float out[kBlockRows * kBlockCols];
  _mm512_store_ps(out, Reduce16(acc));
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < cols; ++j) {
      c[r * ldc + j] =
          bias != nullptr ? out[kBlockCols * r + j] + bias[j] : out[kBlockCols * r + j];
    }
  }
}

// One activation row (a decode step) against 16 weight rows w[0..16) (the
// first `cols` stored): sixteen chains side by side, the same chain per
// output as Block's, and one Reduce16 for all (sum s, weight row s, lands
// in lane 4 (s % 4) + s / 4).
COHOST_BF16_TARGET void RowBlock(const uint16_t* a, const uint16_t* const w[kColumnTile], int cols,
                                 int64_t k, const float* bias, float* c) {
  __m512 acc[kColumnTile];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  const uintptr_t next = kColumnTile * k * sizeof(uint16_t);
  for (int64_t i = 0; i < k; i += kStep) {
    const __m512i x = _mm512_loadu_si512(a + i);
    for (int64_t s = 0; s < kColumnTile; ++s) {
      // The next sixteen rows' line: streaming the lm_head from memory, one
      // row read at 0.87-0.91 of the dot kernel's bandwidth through the
      // four-by-four block, 0.95-0.99 this way (bench/RESULTS.md,
      // half_gemm_row_from_memory). (An address past the matrix is only a
      // hint: prefetches never fault; it is made as an integer, since a
      // pointer may not point there.)
      // NOLINTNEXTLINE(performance-no-int-to-ptr)
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(w[s] + i) + next),
                   _MM_HINT_T0);
      const __m512i wv = _mm512_loadu_si512(w[s] + i);
      acc[s] = _mm512_dpbf16_ps(acc[s], reinterpret_cast<const __m512bh&>(x),
                                reinterpret_cast<const __m512bh&>(wv));
    }
  }
  alignas(64) float out[kColumnTile];
  _mm512_store_ps(out, Reduce16(acc));
  for (int s = 0; s < cols; ++s) {
    const float v = out[4 * (s % 4) + s / 4];
    c[s] = bias != nullptr ? v + bias[s] : v;
  }
}

using BlockFn = void (*)(const uint16_t*, const uint16_t* const*, int, int64_t, const float*,
                         float*, int64_t);
constexpr BlockFn kBlocks[kBlockRows + 1] = {nullptr, Block<1>, Block<2>, Block<3>, Block<4>};

}  // namespace

void HalfGemmBf16Dots(const float* a, const uint16_t* w, const float* bias, int64_t m, int64_t n,
                      int64_t k, float* c, int64_t ldc, ThreadPool& pool) {
  if (m <= 0 || n <= 0) return;
  // The caller's thread owns its scratch (workers only write their rows),
  // kRoundedRows rows of it at most.
  thread_local std::vector<uint16_t> rounded;
  rounded.resize(static_cast<size_t>(std::min(m, kRoundedRows) * k));
  uint16_t* x = rounded.data();
  const int64_t tasks = (n + kColumnTile - 1) / kColumnTile;
  for (int64_t m0 = 0; m0 < m; m0 += kRoundedRows) {
    const int64_t rows = std::min(kRoundedRows, m - m0);
    const float* a0 = a + m0 * k;
    float* c0 = c + m0 * ldc;
    pool.ParallelFor(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, kStep)),
                     [&](int64_t begin, int64_t end) {
                       RoundRows(a0 + begin * k, end - begin, k, x + begin * k);
                     });
    pool.ParallelFor(tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t j0 = t * kColumnTile, j1 = std::min(n, j0 + kColumnTile);
        if (rows == 1) {
          const int cols = static_cast<int>(j1 - j0);
          const uint16_t* wr[kColumnTile];
          for (int s = 0; s < kColumnTile; ++s) wr[s] = w + (j0 + std::min(s, cols - 1)) * k;
          RowBlock(x, wr, cols, k, bias != nullptr ? bias + j0 : nullptr, c0 + j0);
          continue;
        }
        for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
          const int64_t block_rows = std::min<int64_t>(kBlockRows, rows - r0);
          for (int64_t jc = j0; jc < j1; jc += kBlockCols) {
            const int cols = static_cast<int>(std::min<int64_t>(kBlockCols, j1 - jc));
            const uint16_t* wr[kBlockCols];
            for (int j = 0; j < kBlockCols; ++j) wr[j] = w + (jc + std::min(j, cols - 1)) * k;
            kBlocks[block_rows](x + r0 * k, wr, cols, k, bias != nullptr ? bias + jc : nullptr,
                                c0 + r0 * ldc + jc, ldc);
          }
        }
      }
    });
  }
}

#else

void HalfGemmBf16Dots(const float*, const uint16_t*, const float*, int64_t, int64_t, int64_t,
                      float*, int64_t, ThreadPool&) {}

#endif

}  // namespace cohost::kernels::cpu
