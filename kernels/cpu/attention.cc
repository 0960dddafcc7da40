// Paged attention on the CPU, one kernel for decode and prefill chunks: each
// (new token, query head) walks its sequence's pages up to its own position
// with an online softmax per page, the way a GPU split over blocks would.
// Pages hold fp32, fp16 or bf16 (PagedKv::dtype); each element is widened to
// fp32 as it is loaded, so attention over narrow pages computes exactly what
// it computes over fp32 pages holding the same values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "attention_rows.h"
#include "cohost/kernels/dtype.h"
#include "cpu_ops.h"
#include "exp8.h"
#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

namespace {

// x[i] = exp(x[i] - shift) for i < n, and exp(t) of one t <= 0, with the C
// library's expf.
struct LibmExp {
  void operator()(float* x, int32_t n, float shift) const {
    for (int32_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
  }
  float One(float t) const { return std::exp(t); }
};

#if defined(__x86_64__)
// The same with Exp8 (exp8.h): within 3 ulp.
struct VectorExp {
  __attribute__((target("avx2,fma"))) void operator()(float* x, int32_t n, float shift) const {
    const __m256 s = _mm256_set1_ps(shift);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_ps(x + i, Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
    }
    if (i < n) {
      alignas(32) float tail[8] = {};
      std::copy(x + i, x + n, tail);
      _mm256_store_ps(tail, Exp8(_mm256_sub_ps(_mm256_load_ps(tail), s)));
      std::copy(tail, tail + (n - i), x + i);
    }
  }
  __attribute__((target("avx2,fma"))) float One(float t) const {
    return _mm256_cvtss_f32(Exp8(_mm256_set1_ps(t)));
  }
};
#endif

// Asks for one head's K and V rows of `page` (its first `rows`) while the
// page before it is read: pages are scattered, so the hardware prefetchers
// lose the stream at every page boundary.
template <DType T>
__attribute__((always_inline)) inline void PrefetchPage(const PagedKv& kv, int32_t page,
                                                        int32_t kv_head, int32_t rows) {
  const int64_t kv_row = static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;
  const int64_t row_bytes = static_cast<int64_t>(kv.head_dim) * DTypeSize(T);
  const int64_t first = static_cast<int64_t>(page) * kv.block_size * kv_row +
                        static_cast<int64_t>(kv_head) * kv.head_dim;
  rows = std::min(rows, kv.block_size);
  for (int32_t r = 0; r < rows; ++r) {
    const char* k = static_cast<const char*>(KvRow<T>(kv.k, first + r * kv_row));
    const char* v = static_cast<const char*>(KvRow<T>(kv.v, first + r * kv_row));
    for (int64_t at = 0; at < row_bytes; at += 64) {
      __builtin_prefetch(k + at);
      __builtin_prefetch(v + at);
    }
  }
}

// One query row against pages of its sequence; out = softmax(q k^T * scale) v
// over logical tokens [0, n_ctx). Inlined into AttendOneAvx2 and
// AttendOneBaseline, so that the compiler vectorizes it once for each; `Rows`
// reads a page's rows of T, `exp` turns a page's scores into probabilities.
template <DType T, typename Rows, typename Exp>
__attribute__((always_inline)) inline void AttendOne(
    const float* q /*[head_dim]*/, const int32_t* block_table /*[max_blocks_per_seq]*/,
    int32_t n_ctx, int32_t kv_head, const PagedKv& kv, float scale,
    float* scores /*[block_size] scratch*/, float* acc /*[head_dim] scratch*/,
    float* out /*[head_dim]*/, Exp exp) {
  const int32_t hd = kv.head_dim;
  const int32_t bs = kv.block_size;
  const int64_t kv_row = static_cast<int64_t>(kv.num_kv_heads) * hd;
  std::fill(acc, acc + hd, 0.f);
  float running_max = -std::numeric_limits<float>::infinity();
  float denom = 0.f;
  for (int32_t b = 0; b * bs < n_ctx; ++b) {
    const int32_t rows = std::min(bs, n_ctx - b * bs);
    const int64_t base =
        static_cast<int64_t>(block_table[b]) * bs * kv_row + static_cast<int64_t>(kv_head) * hd;
    if ((b + 1) * bs < n_ctx)
      PrefetchPage<T>(kv, block_table[b + 1], kv_head, n_ctx - (b + 1) * bs);
    Rows::Scores(q, KvRow<T>(kv.k, base), kv_row, rows, hd, scale, scores);
    float block_max = -std::numeric_limits<float>::infinity();
    for (int32_t r = 0; r < rows; ++r) block_max = std::max(block_max, scores[r]);
    const float new_max = std::max(running_max, block_max);
    // First page: running_max is -inf, correction is 0 and acc/denom are 0.
    const float correction = exp.One(running_max - new_max);
    denom *= correction;
    for (int32_t d = 0; d < hd; ++d) acc[d] *= correction;
    exp(scores, rows, new_max);
    for (int32_t r = 0; r < rows; ++r) denom += scores[r];
    Rows::Accumulate(scores, KvRow<T>(kv.v, base), kv_row, rows, hd, acc);
    running_max = new_max;
  }
  const float inv = 1.f / denom;
  for (int32_t d = 0; d < hd; ++d) out[d] = acc[d] * inv;
}

using AttendFn = void (*)(const float*, const int32_t*, int32_t, int32_t, const PagedKv&, float,
                          float*, float*, float*);

// The build's baseline ISA (SSE2 on x86-64), and AVX2 + FMA + F16C where
// cpuid says the CPU has them: eight-wide fused multiply-adds for q.k and
// p v. One of each per page dtype.
template <DType T>
void AttendOneBaseline(const float* q, const int32_t* block_table, int32_t n_ctx, int32_t kv_head,
                       const PagedKv& kv, float scale, float* scores, float* acc, float* out) {
  AttendOne<T, PortableRows<T>>(q, block_table, n_ctx, kv_head, kv, scale, scores, acc, out,
                                LibmExp{});
}

#if defined(__x86_64__)
template <DType T>
__attribute__((target("avx2,fma,f16c"))) void AttendOneAvx2(const float* q,
                                                            const int32_t* block_table,
                                                            int32_t n_ctx, int32_t kv_head,
                                                            const PagedKv& kv, float scale,
                                                            float* scores, float* acc, float* out) {
  AttendOne<T, Avx2Rows<T>>(q, block_table, n_ctx, kv_head, kv, scale, scores, acc, out,
                            VectorExp{});
}
#endif

AttendFn SelectedAttend(DType dtype) {
#if defined(__x86_64__)
  const CpuFeatures& f = HostCpuFeatures();
  if (f.avx2 && f.fma && f.f16c) {
    switch (dtype) {
      case DType::kF32:
        return AttendOneAvx2<DType::kF32>;
      case DType::kF16:
        return AttendOneAvx2<DType::kF16>;
      case DType::kBF16:
        return AttendOneAvx2<DType::kBF16>;
    }
  }
#endif
  switch (dtype) {
    case DType::kF16:
      return AttendOneBaseline<DType::kF16>;
    case DType::kBF16:
      return AttendOneBaseline<DType::kBF16>;
    case DType::kF32:
      break;
  }
  return AttendOneBaseline<DType::kF32>;
}

}  // namespace

void PagedAttention(const float* q, const BatchLayout& batch, const PagedKv& kv, int32_t num_heads,
                    float scale, float* out, ThreadPool& pool) {
  const int32_t hd = kv.head_dim;
  const int32_t num_tokens = batch.num_tokens;
  if (num_tokens <= 0 || num_heads <= 0 || kv.num_kv_heads <= 0) return;
  const int32_t group = std::max(1, num_heads / kv.num_kv_heads);
  // Which sequence each new token belongs to; -1 for tokens outside every run.
  std::vector<int32_t> token_seq(num_tokens, -1);
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int32_t end = std::min(batch.seq_starts[s + 1], num_tokens);
    for (int32_t i = std::max(batch.seq_starts[s], 0); i < end; ++i) token_seq[i] = s;
  }
  const int64_t work = static_cast<int64_t>(num_tokens) * num_heads;
  const int64_t cost = std::max<int64_t>(1, static_cast<int64_t>(batch.max_context_len) * hd);
  const int64_t grain = std::max<int64_t>(1, 16384 / cost);
  static const AttendFn by_dtype[3] = {SelectedAttend(DType::kF32), SelectedAttend(DType::kF16),
                                       SelectedAttend(DType::kBF16)};
  const AttendFn attend = by_dtype[static_cast<int>(kv.dtype)];
  pool.ParallelFor(work, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(kv.block_size), acc(hd);
    for (int64_t w = begin; w < end; ++w) {
      const int32_t i = static_cast<int32_t>(w / num_heads);
      const int32_t h = static_cast<int32_t>(w % num_heads);
      float* o = out + w * hd;
      const int32_t s = token_seq[i];
      const int32_t n_ctx = s < 0 ? 0 : std::min(batch.positions[i] + 1, batch.context_lens[s]);
      if (n_ctx <= 0) {  // padding or out-of-run token: defined output, no reads
        std::fill(o, o + hd, 0.f);
        continue;
      }
      const int32_t* table =
          batch.block_tables + static_cast<int64_t>(s) * batch.max_blocks_per_seq;
      attend(q + w * hd, table, n_ctx, h / group, kv, scale, scores.data(), acc.data(), o);
    }
  });
}

}  // namespace cohost::kernels::cpu
