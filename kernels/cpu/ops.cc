// Elementwise, normalization and GEMM ops of the CPU backend (fp32).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cohost/kernels/panels.h"
#include "cpu_ops.h"
#include "exp8.h"
#include "quant/cpu_features.h"
#include "quant/quant_kernels.h"

namespace cohost::kernels::cpu {

namespace {
// Elements per parallel chunk for cheap elementwise loops: below this the
// thread handoff costs more than the work.
constexpr int64_t kElementGrain = 16384;

int64_t RowGrain(int64_t width) {
  return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(width, 1));
}

// Sum of x[j]^2 in double: the reference should not lose digits to
// accumulation order (hidden runs to 8192). Each square of a float is exact
// in double; eight chains (j mod 8) summed by a fixed tree then the tail
// in order, so any compiler's vectors give the same bits, and a row costs
// hidden / 8 dependent adds, not hidden (one chain was 3% of a
// sixteen-sequence decode step: bench/RESULTS.md).
double SumOfSquares(const float* x, int32_t n) {
  constexpr int kChains = 8;
  double chain[kChains] = {};
  int32_t j = 0;
  for (; j + kChains <= n; j += kChains) {
    for (int c = 0; c < kChains; ++c) chain[c] += static_cast<double>(x[j + c]) * x[j + c];
  }
  double ss = ((chain[0] + chain[4]) + (chain[2] + chain[6])) +
              ((chain[1] + chain[5]) + (chain[3] + chain[7]));
  for (; j < n; ++j) ss += static_cast<double>(x[j]) * x[j];
  return ss;
}

// out = v / rms(v) * weight over n values; out may be v.
void NormalizeRow(const float* v, const float* weight, int32_t n, float eps, float* out) {
  const double ss = SumOfSquares(v, n);
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  // HF order: (x * rsqrt(var + eps)) rounded to fp32, then times weight.
  for (int32_t j = 0; j < n; ++j) out[j] = (v[j] * inv_rms) * weight[j];
}
}  // namespace

void Embedding(const int32_t* ids, int32_t n, WeightRef table, int32_t hidden, float* out,
               ThreadPool& pool) {
  const auto* base = static_cast<const uint8_t*>(table.data);
  const size_t row_bytes = table.format == WeightFormat::kDense
                               ? sizeof(float) * static_cast<size_t>(hidden)
                               : QuantRowBytes(table.format, hidden);
  pool.ParallelFor(n, RowGrain(hidden), [&](int64_t begin, int64_t end) {
    // A row of a panel, as stored (StoredRow).
    thread_local std::vector<uint8_t> scratch;
    for (int64_t i = begin; i < end; ++i) {
      if (table.format == WeightFormat::kDense) {
        std::memcpy(out + i * hidden, base + static_cast<size_t>(ids[i]) * row_bytes, row_bytes);
      } else {
        if (table.layout != WeightLayout::kRows) scratch.resize(row_bytes);
        DequantizeRow(table.format, StoredRow(table, ids[i], hidden, scratch.data()), hidden,
                      out + i * hidden);
      }
    }
  });
}

void RmsNorm(const float* x, float* residual, const float* weight, int32_t n, int32_t hidden,
             float eps, float* out, ThreadPool& pool) {
  pool.ParallelFor(n, RowGrain(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xr = x + i * hidden;
      const float* src = xr;
      if (residual != nullptr) {
        float* rr = residual + i * hidden;
        for (int32_t j = 0; j < hidden; ++j) rr[j] += xr[j];
        src = rr;
      }
      NormalizeRow(src, weight, hidden, eps, out + i * hidden);
    }
  });
}

void HeadRmsNorm(float* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                 const float* weight, float eps, ThreadPool& pool) {
  pool.ParallelFor(int64_t{rows} * heads, RowGrain(head_dim), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* v = x + i / heads * row_stride + i % heads * head_dim;
      NormalizeRow(v, weight, head_dim, eps, v);
    }
  });
}

void Gemm(const float* a, const float* w, const float* bias, int32_t m, int32_t n, int32_t k,
          float* c) {
  if (m <= 0 || n <= 0) return;
  float beta = 0.f;
  if (bias != nullptr) {
    for (int32_t i = 0; i < m; ++i)
      std::memcpy(c + static_cast<int64_t>(i) * n, bias, sizeof(float) * n);
    beta = 1.f;
  }
  if (k <= 0) {
    if (bias == nullptr) std::memset(c, 0, sizeof(float) * static_cast<size_t>(m) * n);
    return;
  }
  if (m == 1) {
    // Decode: y[n] = W[n, k] x[k]; gemv streams the weights once.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.f, w, k, a, 1, beta, c, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, a, k, w, k, beta, c, n);
  }
}

void Add(float* x, const float* y, int64_t n, ThreadPool& pool) {
  pool.ParallelFor(n, kElementGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] += y[i];
  });
}

namespace {

// o[j] = silu(g[j]) * u[j] = g[j] / (1 + exp(-g[j])) * u[j], j < n.
void SiluMulRow(const float* g, const float* u, int32_t n, float* o) {
  for (int32_t j = 0; j < n; ++j) o[j] = g[j] / (1.f + std::exp(-g[j])) * u[j];
}

#if defined(__x86_64__)
// The same eight at a time with Exp8 (within 3 ulp), which takes t <= 0 only:
// with e = exp(-|g|), silu(g) = g / (1 + e) for g >= 0 and g e / (1 + e)
// below (exact rewritings).
__attribute__((target("avx2,fma"))) void SiluMulRowAvx2(const float* g, const float* u, int32_t n,
                                                        float* o) {
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 sign = _mm256_set1_ps(-0.f);
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(g + j);
    const __m256 e = Exp8(_mm256_or_ps(x, sign));                    // exp(-|x|)
    const __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), x);  // sign bit set: x e
    const __m256 silu = _mm256_div_ps(num, _mm256_add_ps(one, e));
    _mm256_storeu_ps(o + j, _mm256_mul_ps(silu, _mm256_loadu_ps(u + j)));
  }
  SiluMulRow(g + j, u + j, n - j, o + j);
}
#endif

using SiluMulRowFn = void (*)(const float*, const float*, int32_t, float*);

SiluMulRowFn SelectedSiluMulRow() {
#if defined(__x86_64__)
  const CpuFeatures& f = HostCpuFeatures();
  if (f.avx2 && f.fma) return SiluMulRowAvx2;
#endif
  return SiluMulRow;
}

}  // namespace

void SiluMul(const float* gate_up, int32_t n, int32_t inter, float* out, ThreadPool& pool) {
  static const SiluMulRowFn row = SelectedSiluMulRow();
  pool.ParallelFor(n, RowGrain(inter), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* g = gate_up + i * 2 * inter;
      row(g, g + inter, inter, out + i * inter);
    }
  });
}

void MoeCombine(const float* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                int32_t width, float* out, ThreadPool& pool) {
  pool.ParallelFor(n, RowGrain(int64_t{k} * width), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* o = out + t * width;
      std::fill(o, o + width, 0.f);
      for (int32_t j = 0; j < k; ++j) {
        const float w = weights[t * k + j];
        const float* src = y + static_cast<int64_t>(rows[t * k + j]) * width;
        for (int32_t i = 0; i < width; ++i) o[i] += w * src[i];
      }
    }
  });
}

void GatherRows(const float* x, const int32_t* rows, int32_t num_rows, int32_t width, float* out) {
  for (int32_t r = 0; r < num_rows; ++r) {
    std::memcpy(out + static_cast<int64_t>(r) * width, x + static_cast<int64_t>(rows[r]) * width,
                sizeof(float) * width);
  }
}

}  // namespace cohost::kernels::cpu
