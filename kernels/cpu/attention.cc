// Paged attention on the CPU, one kernel for decode and prefill chunks: each
// (new token, query head) walks its sequence's pages up to its own position
// with an online softmax per page, the way a GPU split over blocks would.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_ops.h"
#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

namespace {

// Eight independent partial sums: lets the compiler use SIMD lanes (a single
// float accumulator forces a serial add chain) and shortens rounding chains.
__attribute__((always_inline)) inline float Dot(const float* a, const float* b, int32_t n) {
  float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int32_t d = 0;
  for (; d + 8 <= n; d += 8) {
    for (int j = 0; j < 8; ++j) lanes[j] += a[d + j] * b[d + j];
  }
  float r = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
            ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; d < n; ++d) r += a[d] * b[d];
  return r;
}

// One query row against pages of its sequence; out = softmax(q k^T * scale) v
// over logical tokens [0, n_ctx). Inlined into AttendOneAvx2 and
// AttendOneBaseline, so that the compiler vectorizes it once for each.
__attribute__((always_inline)) inline void AttendOne(
    const float* q /*[head_dim]*/, const int32_t* block_table /*[max_blocks_per_seq]*/,
    int32_t n_ctx, int32_t kv_head, const PagedKv& kv, float scale,
    float* scores /*[block_size] scratch*/, float* acc /*[head_dim] scratch*/,
    float* out /*[head_dim]*/) {
  const int32_t hd = kv.head_dim;
  const int32_t bs = kv.block_size;
  const int64_t kv_row = static_cast<int64_t>(kv.num_kv_heads) * hd;
  const float* k_pages =
      static_cast<const float*>(kv.k);  // [num_blocks, block_size, num_kv_heads, head_dim]
  const float* v_pages =
      static_cast<const float*>(kv.v);  // [num_blocks, block_size, num_kv_heads, head_dim]
  std::fill(acc, acc + hd, 0.f);
  float running_max = -std::numeric_limits<float>::infinity();
  float denom = 0.f;
  for (int32_t b = 0; b * bs < n_ctx; ++b) {
    const int32_t rows = std::min(bs, n_ctx - b * bs);
    const int64_t base =
        static_cast<int64_t>(block_table[b]) * bs * kv_row + static_cast<int64_t>(kv_head) * hd;
    float block_max = -std::numeric_limits<float>::infinity();
    for (int32_t r = 0; r < rows; ++r) {
      const float* kr = k_pages + base + r * kv_row;
      scores[r] = Dot(q, kr, hd) * scale;
      block_max = std::max(block_max, scores[r]);
    }
    const float new_max = std::max(running_max, block_max);
    // First page: running_max is -inf, correction is 0 and acc/denom are 0.
    const float correction = std::exp(running_max - new_max);
    denom *= correction;
    for (int32_t d = 0; d < hd; ++d) acc[d] *= correction;
    for (int32_t r = 0; r < rows; ++r) {
      const float p = std::exp(scores[r] - new_max);
      denom += p;
      const float* vr = v_pages + base + r * kv_row;
      for (int32_t d = 0; d < hd; ++d) acc[d] += p * vr[d];
    }
    running_max = new_max;
  }
  const float inv = 1.f / denom;
  for (int32_t d = 0; d < hd; ++d) out[d] = acc[d] * inv;
}

using AttendFn = void (*)(const float*, const int32_t*, int32_t, int32_t, const PagedKv&, float,
                          float*, float*, float*);

// The build's baseline ISA (SSE2 on x86-64), and AVX2 + FMA where cpuid
// says the CPU has them: eight-wide fused multiply-adds for q.k and p v.
void AttendOneBaseline(const float* q, const int32_t* block_table, int32_t n_ctx, int32_t kv_head,
                       const PagedKv& kv, float scale, float* scores, float* acc, float* out) {
  AttendOne(q, block_table, n_ctx, kv_head, kv, scale, scores, acc, out);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void AttendOneAvx2(const float* q, const int32_t* block_table,
                                                       int32_t n_ctx, int32_t kv_head,
                                                       const PagedKv& kv, float scale,
                                                       float* scores, float* acc, float* out) {
  AttendOne(q, block_table, n_ctx, kv_head, kv, scale, scores, acc, out);
}
#endif

AttendFn SelectedAttend() {
#if defined(__x86_64__)
  const CpuFeatures& f = HostCpuFeatures();
  if (f.avx2 && f.fma) return AttendOneAvx2;
#endif
  return AttendOneBaseline;
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
  static const AttendFn attend = SelectedAttend();
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
