// Paged attention on the CPU, one kernel for decode and prefill chunks: each
// query head walks its sequence's pages, the way a GPU split over blocks
// would, with an online softmax over spans of pages (about 64 keys: the max,
// the exponentials and the sums run once per span, not once per page, and
// they are what bound it, not the multiply-adds), for a tile of up to eight
// query rows of one KV head at once (a decode token's query heads of a GQA
// group, or consecutive tokens of a prefill chunk, each to its own
// position), so that each K and V element is loaded and widened once per
// tile (the AVX2 rows: per four rows) instead of once per row. A row's
// output has the same bits in any tile as alone.
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
#include "attention_rows_avx512.h"
#include "cohost/kernels/dtype.h"
#include "cpu_ops.h"
#include "exp8.h"
#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

namespace {

// The softmax's steps over one row's scores x[0, n), n > 0: their max, and
// x[i] = exp(x[i] - shift) in place with the sum of the results; and exp(t)
// of one t <= 0. With the C library's expf, in order.
struct LibmSoftmax {
  float Max(const float* x, int32_t n) const {
    float m = x[0];
    for (int32_t i = 1; i < n; ++i) m = std::max(m, x[i]);
    return m;
  }
  float ExpSum(float* x, int32_t n, float shift) const {
    float sum = 0.f;
    for (int32_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
    return sum;
  }
  float One(float t) const { return std::exp(t); }
};

#if defined(__x86_64__)
// The same eight lanes at a time, with Exp8 (exp8.h: within 3 ulp); the sum
// adds each lane's partial sums, then the lanes by SumLanes4's tree, then
// the tail in order.
struct VectorSoftmax {
  __attribute__((target("avx2,fma"))) float Max(const float* x, int32_t n) const {
    __m256 m = _mm256_set1_ps(x[0]);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    float out = lanes[0];
    for (float l : lanes) out = std::max(out, l);
    for (; i < n; ++i) out = std::max(out, x[i]);
    return out;
  }
  __attribute__((target("avx2,fma,f16c"))) float ExpSum(float* x, int32_t n, float shift) const {
    return ExpSumFrom(x, 0, n, shift, _mm256_setzero_ps());
  }
  // ExpSum's steps from x[i] on, its lanes' partial sums so far in `sum`.
  __attribute__((target("avx2,fma,f16c"))) static float ExpSumFrom(float* x, int32_t i, int32_t n,
                                                                   float shift, __m256 sum) {
    const __m256 s = _mm256_set1_ps(shift);
    for (; i + 8 <= n; i += 8) {
      const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
      _mm256_storeu_ps(x + i, e);
      sum = _mm256_add_ps(sum, e);
    }
    float total = SumLanes(sum);
    if (i < n) {
      alignas(32) float tail[8] = {};
      std::copy(x + i, x + n, tail);
      _mm256_store_ps(tail, Exp8(_mm256_sub_ps(_mm256_load_ps(tail), s)));
      std::copy(tail, tail + (n - i), x + i);
      for (int32_t t = 0; t < n - i; ++t) total += tail[t];
    }
    return total;
  }
  __attribute__((target("avx2,fma"))) float One(float t) const {
    return _mm256_cvtss_f32(Exp8(_mm256_set1_ps(t)));
  }
};

// VectorSoftmax with the exponentials sixteen at a time (Exp16: Exp8's
// bits), each half added to the eight-lane sum in turn: the same sums in
// the same order, so the same bits.
struct VectorSoftmax512 : VectorSoftmax {
  __attribute__((target("avx2,fma,f16c,avx512f"))) float ExpSum(float* x, int32_t n,
                                                                float shift) const {
    const __m512 s16 = _mm512_set1_ps(shift);
    __m256 sum = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s16));
      _mm512_storeu_ps(x + i, e);
      sum = _mm256_add_ps(sum, _mm512_castps512_ps256(e));
      sum = _mm256_add_ps(sum, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
    }
    return VectorSoftmax::ExpSumFrom(x, i, n, shift, sum);
  }
};
#endif

// Keys a span of pages holds at most: whole pages, at least one.
constexpr int32_t kSpanKeys = 64;
inline int32_t SpanPages(int32_t block_size) { return std::max(1, kSpanKeys / block_size); }

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

// Up to kTileRows query rows of one KV head and one sequence, each with its
// own causal context (query heads of a GQA group, of one token or of a few
// consecutive tokens of a prefill chunk). Masked keys weigh exactly 0, so
// each row's output has the bits it would have alone.
struct Tile {
  const float* q[kTileRows];  // [head_dim] each
  float* out[kTileRows];      // [head_dim] each
  int32_t n_ctx[kTileRows];   // > 0
  int32_t num_rows = 0;
};

// Scratch of one worker: each row's span scores and output accumulator.
struct TileScratch {
  float* scores;  // [kTileRows, SpanPages(block_size) * block_size]
  float* acc;     // [kTileRows, head_dim]
};

// out = softmax(q k^T * scale) v over logical tokens [0, n_ctx) for each
// row of the tile, a span of pages at a time with an online softmax. Inlined
// into AttendAvx512, AttendAvx2 and AttendBaseline, so that the compiler vectorizes it
// once for each; `Rows` reads a page's rows of T, `softmax` turns a span's
// scores into probabilities. The spans start at page 0 whatever the tile,
// so that a row gets the same steps in a tile as alone.
template <DType T, typename Rows, typename Softmax>
__attribute__((always_inline)) inline void AttendTile(const Tile& t, const int32_t* block_table,
                                                      int32_t kv_head, const PagedKv& kv,
                                                      float scale, const TileScratch& scratch,
                                                      Softmax softmax) {
  const int32_t hd = kv.head_dim;
  const int32_t bs = kv.block_size;
  const int32_t span_pages = SpanPages(bs);
  const int32_t pitch = span_pages * bs;  // a row's scores in the scratch
  const int64_t kv_row = static_cast<int64_t>(kv.num_kv_heads) * hd;
  float* acc[kTileRows];
  float running_max[kTileRows], denom[kTileRows];
  int32_t max_ctx = 0;
  for (int32_t j = 0; j < t.num_rows; ++j) {
    acc[j] = scratch.acc + static_cast<int64_t>(j) * hd;
    std::fill(acc[j], acc[j] + hd, 0.f);
    running_max[j] = -std::numeric_limits<float>::infinity();
    denom[j] = 0.f;
    max_ctx = std::max(max_ctx, t.n_ctx[j]);
  }
  const int32_t num_pages = (max_ctx + bs - 1) / bs;
  const auto page_base = [&](int32_t b) {
    return static_cast<int64_t>(block_table[b]) * bs * kv_row + static_cast<int64_t>(kv_head) * hd;
  };
  for (int32_t first = 0; first < num_pages; first += span_pages) {
    const int32_t end = std::min(first + span_pages, num_pages);
    const int32_t span_keys = std::min(pitch, max_ctx - first * bs);
    for (int32_t b = first; b < end; ++b) {
      if (b + 1 < num_pages)
        PrefetchPage<T>(kv, block_table[b + 1], kv_head, max_ctx - (b + 1) * bs);
      Rows::ScoresTile(t.q, t.num_rows, KvRow<T>(kv.k, page_base(b)), kv_row,
                       std::min(bs, max_ctx - b * bs), hd, scale,
                       scratch.scores + static_cast<int64_t>(b - first) * bs, pitch);
    }
    for (int32_t j = 0; j < t.num_rows; ++j) {
      float* scores = scratch.scores + static_cast<int64_t>(j) * pitch;
      // Keys of the span this row sees.
      const int32_t mine = std::clamp(t.n_ctx[j] - first * bs, 0, span_keys);
      if (mine == 0) {  // the span is past this row: it takes nothing from it
        std::fill(scores, scores + span_keys, 0.f);
        continue;
      }
      const float new_max = std::max(running_max[j], softmax.Max(scores, mine));
      // First span: running_max is -inf, correction is 0 and acc/denom are 0.
      const float correction = softmax.One(running_max[j] - new_max);
      for (int32_t d = 0; d < hd; ++d) acc[j][d] *= correction;
      denom[j] = denom[j] * correction + softmax.ExpSum(scores, mine, new_max);
      std::fill(scores + mine, scores + span_keys, 0.f);
      running_max[j] = new_max;
    }
    for (int32_t b = first; b < end; ++b) {
      Rows::AccumulateTile(scratch.scores + static_cast<int64_t>(b - first) * bs, pitch, t.num_rows,
                           KvRow<T>(kv.v, page_base(b)), kv_row, std::min(bs, max_ctx - b * bs), hd,
                           acc);
    }
  }
  for (int32_t j = 0; j < t.num_rows; ++j) {
    const float inv = 1.f / denom[j];
    for (int32_t d = 0; d < hd; ++d) t.out[j][d] = acc[j][d] * inv;
  }
}

using AttendFn = void (*)(const Tile&, const int32_t*, int32_t, const PagedKv&, float,
                          const TileScratch&);

// The build's baseline ISA (SSE2 on x86-64), AVX2 + FMA + F16C, or AVX-512F
// where cpuid says the CPU has them (up to `cap`: HostKernelCap):
// eight-wide fused multiply-adds for q.k and p v, or the same chains two to
// a 512-bit register (attention_rows_avx512.h: the AVX2 rows' bits). One of
// each per page dtype.
template <DType T>
void AttendBaseline(const Tile& t, const int32_t* block_table, int32_t kv_head, const PagedKv& kv,
                    float scale, const TileScratch& scratch) {
  AttendTile<T, PortableRows<T>>(t, block_table, kv_head, kv, scale, scratch, LibmSoftmax{});
}

#if defined(__x86_64__)
template <DType T>
__attribute__((target("avx2,fma,f16c"))) void AttendAvx2(const Tile& t, const int32_t* block_table,
                                                         int32_t kv_head, const PagedKv& kv,
                                                         float scale, const TileScratch& scratch) {
  AttendTile<T, Avx2Rows<T>>(t, block_table, kv_head, kv, scale, scratch, VectorSoftmax{});
}

template <DType T>
__attribute__((target("avx2,fma,f16c,avx512f"))) void AttendAvx512(const Tile& t,
                                                                   const int32_t* block_table,
                                                                   int32_t kv_head,
                                                                   const PagedKv& kv, float scale,
                                                                   const TileScratch& scratch) {
  AttendTile<T, Avx512Rows<T>>(t, block_table, kv_head, kv, scale, scratch, VectorSoftmax512{});
}
#endif

AttendFn SelectedAttend(DType dtype, int32_t head_dim, KernelCap cap) {
  const auto pick = [dtype](AttendFn f32, AttendFn f16, AttendFn bf16) {
    return dtype == DType::kF16 ? f16 : dtype == DType::kBF16 ? bf16 : f32;
  };
#if defined(__x86_64__)
  const CpuFeatures& f = HostCpuFeatures();
  if (f.avx2 && f.fma && f.f16c && cap != KernelCap::kScalar) {
    if (f.avx512f && cap >= KernelCap::kAvx512 && Avx512RowsFit(head_dim)) {
      return pick(AttendAvx512<DType::kF32>, AttendAvx512<DType::kF16>, AttendAvx512<DType::kBF16>);
    }
    return pick(AttendAvx2<DType::kF32>, AttendAvx2<DType::kF16>, AttendAvx2<DType::kBF16>);
  }
#endif
  return pick(AttendBaseline<DType::kF32>, AttendBaseline<DType::kF16>,
              AttendBaseline<DType::kBF16>);
}

}  // namespace

void PagedAttention(const float* q, int64_t q_stride, const BatchLayout& batch, const PagedKv& kv,
                    int32_t num_heads, float scale, float* out, ThreadPool& pool, KernelCap cap) {
  const int32_t hd = kv.head_dim;
  const int32_t num_tokens = batch.num_tokens;
  if (num_tokens <= 0 || num_heads <= 0 || kv.num_kv_heads <= 0) return;
  const int32_t group = std::max(1, num_heads / kv.num_kv_heads);
  // Tiles of up to kTileRows consecutive tokens of one sequence. A token
  // outside every run, or with no context, gets a defined output and no reads.
  struct TokenTile {
    int32_t seq, first, count;
  };
  std::vector<TokenTile> tiles;
  std::vector<int32_t> n_ctx(num_tokens, 0);
  std::vector<bool> covered(num_tokens, false);
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int32_t end = std::min(batch.seq_starts[s + 1], num_tokens);
    for (int32_t i = std::max(batch.seq_starts[s], 0); i < end; ++i) {
      if (covered[i]) continue;
      covered[i] = true;
      n_ctx[i] = std::min(batch.positions[i] + 1, batch.context_lens[s]);
      if (n_ctx[i] <= 0) continue;
      if (tiles.empty() || tiles.back().seq != s || tiles.back().count == kTileRows ||
          tiles.back().first + tiles.back().count != i) {
        tiles.push_back({s, i, 0});
      }
      ++tiles.back().count;
    }
  }
  for (int32_t i = 0; i < num_tokens; ++i) {
    if (n_ctx[i] <= 0)
      std::fill(out + static_cast<int64_t>(i) * num_heads * hd,
                out + static_cast<int64_t>(i + 1) * num_heads * hd, 0.f);
  }
  const AttendFn attend = SelectedAttend(kv.dtype, hd, cap);
  // Work items: a token tile with as many consecutive query heads of one KV
  // group as fill the tile's rows (a decode step's whole group of up to
  // kTileRows heads), so that each K and V element is loaded and widened
  // once for all of them; fewer heads an item where whole groups would
  // leave the pool under two items a thread (a one-sequence decode).
  const int64_t want = 2 * static_cast<int64_t>(pool.num_threads());
  int32_t max_heads = std::min(group, kTileRows);
  while (max_heads > 1 && static_cast<int64_t>(tiles.size()) * kv.num_kv_heads *
                                  ((group + max_heads - 1) / max_heads) <
                              want) {
    --max_heads;
  }
  struct Item {
    int32_t tile, head, heads;
  };
  std::vector<Item> items;
  for (int32_t ti = 0; ti < static_cast<int32_t>(tiles.size()); ++ti) {
    const int32_t per_tile = std::max(1, std::min(max_heads, kTileRows / tiles[ti].count));
    for (int32_t h = 0; h < num_heads;) {
      const int32_t group_end = std::min(num_heads, (h / group + 1) * group);
      const int32_t heads = std::min(per_tile, group_end - h);
      items.push_back({ti, h, heads});
      h += heads;
    }
  }
  const int64_t cost =
      std::max<int64_t>(1, static_cast<int64_t>(batch.max_context_len) * hd * kTileRows);
  const int64_t grain = std::max<int64_t>(1, 16384 / cost);
  pool.ParallelFor(static_cast<int64_t>(items.size()), grain, [&](int64_t begin, int64_t end) {
    const int64_t span_keys = static_cast<int64_t>(SpanPages(kv.block_size)) * kv.block_size;
    std::vector<float> buffer(static_cast<size_t>(kTileRows * (span_keys + hd)));
    const TileScratch scratch{buffer.data(), buffer.data() + kTileRows * span_keys};
    for (int64_t w = begin; w < end; ++w) {
      const Item& item = items[w];
      const TokenTile& tt = tiles[item.tile];
      Tile t;
      t.num_rows = tt.count * item.heads;
      for (int32_t j = 0; j < tt.count; ++j) {
        const int64_t token = tt.first + j;
        for (int32_t g = 0; g < item.heads; ++g) {
          const int32_t row = j * item.heads + g;
          const int64_t h = item.head + g;
          t.q[row] = q + token * q_stride + h * hd;
          t.out[row] = out + (token * num_heads + h) * hd;
          t.n_ctx[row] = n_ctx[token];
        }
      }
      const int32_t* table =
          batch.block_tables + static_cast<int64_t>(tt.seq) * batch.max_blocks_per_seq;
      attend(t, table, item.head / group, kv, scale, scratch);
    }
  });
}

}  // namespace cohost::kernels::cpu
