// cpu::HalfGemm: fp32 activations against weight rows stored in fp16 or bf16
// (a GGUF's F16 / BF16 matrices, kept at two bytes a value), widened to fp32
// as they are read.
//
// Up to HalfGemmDotRows() activation rows (decode steps, one sequence or a
// batch) take dot products that widen each weight vector once for a pass of
// rows: a scalar version, one with F16C conversions and AVX2 + FMA, and one
// on 512-bit registers (AVX-512F), the best chosen from cpuid. All compute
// each output the same way, so they give the same bits, and a row's outputs
// do not depend on the other rows (thirty-two lanes, so that a decode step
// is not bound by the latency of one chain of FMAs):
//   acc[q] = fma(w[i], a[i], acc[q]) over i with i % 32 == q, in order;
//   v[l] = (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]);
//   s = v[0..3] + v[4..7]; out = (s0 + s2) + (s1 + s3).
// More rows (a prompt: bound by arithmetic) widen kWidenRows weight rows at a
// time into a scratch buffer and hand them to OpenBLAS's sgemm, which wins
// there (bench/quant_dot_bench's half_gemm rows, bench/RESULTS.md); the
// scratch is 256 rows, never the matrix. On CPUs with AMX-BF16, tile
// multiplies take bf16 weights at any number of rows instead, and f16 ones
// in place of sgemm (half_gemm_amx.h); on CPUs with AVX512-BF16 and no
// tiles, bf16 pair products take bf16 weights at any number of rows
// (half_gemm_bf16.h).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cohost/kernels/dtype.h"
#include "cpu_ops.h"
#include "half_gemm_amx.h"
#include "half_gemm_bf16.h"
#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {
namespace {

// Output columns per pool task: one 64-byte line of c, as QuantGemm.
constexpr int64_t kColumnTile = 16;
// Activation rows a pass keeps accumulators for (thirty-two lanes each:
// four 256-bit registers, or two 512-bit ones); each weight row is widened
// once per pass.
constexpr int64_t kRowsPerPass = 2;
constexpr int64_t kRowsPerPass512 = 4;
// Weight rows widened per sgemm call, for more activation rows than that.
constexpr int64_t kWidenRows = 256;

float Widen(uint16_t h, bool bf16) { return bf16 ? Bf16ToF32(h) : F16ToF32(h); }

// c[r * ldc] = the dot of weight row w (k values, a multiple of 32) with
// activation row a + r * k, for r < rows (<= kRowsPerPass).
using HalfDotsFn = void (*)(const uint16_t* w, bool bf16, const float* a, int64_t rows, int64_t k,
                            float* c, int64_t ldc);

void HalfDotsScalar(const uint16_t* w, bool bf16, const float* a, int64_t rows, int64_t k, float* c,
                    int64_t ldc) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a + r * k;
    float acc[32] = {};
    for (int64_t i = 0; i < k; i += 32) {
      for (int q = 0; q < 32; ++q) acc[q] = std::fma(Widen(w[i + q], bf16), x[i + q], acc[q]);
    }
    float v[8];
    for (int l = 0; l < 8; ++l) v[l] = (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]);
    float s[4];
    for (int l = 0; l < 4; ++l) s[l] = v[l] + v[l + 4];
    c[r * ldc] = (s[0] + s[2]) + (s[1] + s[3]);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) __m256 Widen8(const uint16_t* w, bool bf16) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  if (!bf16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma,f16c"))) float Reduce8(__m256 acc) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));  // s0 + s2, s1 + s3
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

__attribute__((target("avx2,fma,f16c"))) void HalfDotsAvx2(const uint16_t* w, bool bf16,
                                                           const float* a, int64_t rows, int64_t k,
                                                           float* c, int64_t ldc) {
  __m256 acc[kRowsPerPass][4];
  for (auto& row : acc) {
    for (__m256& v : row) v = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < k; i += 32) {
    __m256 wv[4];
    for (int64_t q = 0; q < 4; ++q) wv[q] = Widen8(w + i + 8 * q, bf16);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t q = 0; q < 4; ++q) {
        acc[r][q] = _mm256_fmadd_ps(wv[q], _mm256_loadu_ps(a + r * k + i + 8 * q), acc[r][q]);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    c[r * ldc] = Reduce8(
        _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
  }
}

// The AVX2 kernel's lanes on 512-bit registers: acc[r][0] holds lanes 0..15
// of row r, acc[r][1] lanes 16..31; the reduction adds the same pairs.
__attribute__((target("avx2,fma,f16c,avx512f"))) __m512 Widen16(const uint16_t* w, bool bf16) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  if (!bf16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Lanes 0..7 plus lanes 8..15 of x (AVX-512F alone has no 256-bit float
// extract).
__attribute__((target("avx2,fma,f16c,avx512f"))) __m256 Halves(__m512 x) {
  const __m256 top = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
  return _mm256_add_ps(_mm512_castps512_ps256(x), top);
}

__attribute__((target("avx2,fma,f16c,avx512f"))) void HalfDotsAvx512(const uint16_t* w, bool bf16,
                                                                     const float* a, int64_t rows,
                                                                     int64_t k, float* c,
                                                                     int64_t ldc) {
  __m512 acc[kRowsPerPass512][2];
  for (auto& row : acc) {
    for (__m512& v : row) v = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < k; i += 32) {
    const __m512 w0 = Widen16(w + i, bf16), w1 = Widen16(w + i + 16, bf16);
    for (int64_t r = 0; r < rows; ++r) {
      acc[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(a + r * k + i), acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(a + r * k + i + 16), acc[r][1]);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    // (lanes l + lanes 8 + l) + (lanes 16 + l + lanes 24 + l), as the AVX2 kernel.
    c[r * ldc] = Reduce8(_mm256_add_ps(Halves(acc[r][0]), Halves(acc[r][1])));
  }
}
#endif

void WidenRowScalar(const uint16_t* w, int64_t k, bool bf16, float* out) {
  for (int64_t i = 0; i < k; ++i) out[i] = Widen(w[i], bf16);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) void WidenRowAvx2(const uint16_t* w, int64_t k, bool bf16,
                                                           float* out) {
  for (int64_t i = 0; i < k; i += 8) _mm256_storeu_ps(out + i, Widen8(w + i, bf16));
}
#endif

using WidenRowFn = void (*)(const uint16_t* w, int64_t k, bool bf16, float* out);

// A dot kernel, the activation rows it takes a pass, and the most rows
// HalfGemm gives it before sgemm is faster (bench/quant_dot_bench's
// half_gemm rows on an Emerald Rapids core: the 512-bit dots beat sgemm up
// to 32-48 rows, the AVX2 ones up to 16-24; bench/RESULTS.md).
struct HalfDots {
  HalfDotsFn fn = HalfDotsScalar;
  int64_t rows_per_pass = kRowsPerPass;
  int32_t max_rows = 4;
  const char* name = "scalar";
};

// The kernels this CPU runs: the AVX2 (F16C, FMA) ones and the 512-bit dots
// where cpuid has them.
struct HalfKernels {
  HalfDots dots, avx2_dots;
  WidenRowFn widen = WidenRowScalar;
};

const HalfKernels& SelectedHalfKernels() {
  static const HalfKernels k = [] {
    HalfKernels out;
#if defined(__x86_64__)
    const CpuFeatures& f = HostCpuFeatures();
    if (f.avx2 && f.fma && f.f16c) {
      out.avx2_dots = {HalfDotsAvx2, kRowsPerPass, 16, "avx2"};
      out.dots = out.avx2_dots;
      out.widen = WidenRowAvx2;
      if (f.avx512f) out.dots = {HalfDotsAvx512, kRowsPerPass512, 32, "avx512"};
    }
#endif
    return out;
  }();
  return k;
}

}  // namespace

bool HalfGemmVectorized() { return SelectedHalfKernels().dots.fn != HalfDotsScalar; }
const char* HalfGemmDotsName() { return SelectedHalfKernels().dots.name; }
int32_t HalfGemmDotRows() { return SelectedHalfKernels().dots.max_rows; }

void HalfGemm(const float* a, WeightRef w, const float* bias, int32_t m, int32_t n, int32_t k,
              float* c, int32_t ldc, ThreadPool& pool, HalfGemmPath path) {
  const HalfKernels& kernels = SelectedHalfKernels();
  const HalfDots dots = path == HalfGemmPath::kScalarDots ? HalfDots{}
                        : path == HalfGemmPath::kAvx2Dots ? kernels.avx2_dots
                                                          : kernels.dots;
  const bool bf16 = w.format == WeightFormat::kBF16;
  const auto* base = static_cast<const uint16_t*>(w.data);
  if (m <= 0 || n <= 0) return;
  // The tiles: bf16 weights at any number of rows, f16 ones (three
  // multiplies a sum) where the dots would hand over to sgemm.
  const bool tiles =
      path == HalfGemmPath::kAmx || (path == HalfGemmPath::kAuto && (bf16 || m > dots.max_rows));
  if (tiles && HalfGemmAmxAvailable()) {
    HalfGemmAmx(a, w, bias, m, n, k, c, ldc, pool);
    return;
  }
  if (bf16 && (path == HalfGemmPath::kAuto || path == HalfGemmPath::kBf16Dots) &&
      HalfGemmBf16DotsAvailable()) {
    HalfGemmBf16Dots(a, base, bias, m, n, k, c, ldc, pool);
    return;
  }
  if (path == HalfGemmPath::kSgemm || path == HalfGemmPath::kAmx ||
      (path == HalfGemmPath::kAuto && m > dots.max_rows)) {
    const WidenRowFn widen = kernels.widen;
    // The caller's thread owns its scratch; workers only write their rows.
    thread_local std::vector<float> widened;
    for (int64_t j0 = 0; j0 < n; j0 += kWidenRows) {
      const int64_t rows = std::min<int64_t>(kWidenRows, n - j0);
      widened.resize(static_cast<size_t>(rows * k));
      float* out = widened.data();
      pool.ParallelFor(rows, 8, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) widen(base + (j0 + j) * k, k, bf16, out + j * k);
      });
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(rows), k, 1.f, a, k,
                  out, k, 0.f, c + j0, ldc);
    }
    if (bias != nullptr) {
      pool.ParallelFor(m, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          for (int64_t j = 0; j < n; ++j) c[i * ldc + j] += bias[j];
        }
      });
    }
    return;
  }
  const int64_t tasks = (n + kColumnTile - 1) / kColumnTile;
  pool.ParallelFor(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t j0 = t * kColumnTile, j1 = std::min<int64_t>(n, j0 + kColumnTile);
      // The task's weight rows (16 x k x 2 bytes) stay in cache while every
      // pass of activation rows goes through them.
      for (int64_t r0 = 0; r0 < m; r0 += dots.rows_per_pass) {
        const int64_t rows = std::min<int64_t>(dots.rows_per_pass, m - r0);
        for (int64_t j = j0; j < j1; ++j) {
          dots.fn(base + j * k, bf16, a + r0 * k, rows, k, c + r0 * ldc + j, ldc);
        }
      }
      if (bias != nullptr) {
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = j0; j < j1; ++j) c[i * ldc + j] += bias[j];
        }
      }
    }
  });
}

}  // namespace cohost::kernels::cpu
