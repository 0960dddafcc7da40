// Paged attention on CUDA: one kernel for varlen batches that mix decode
// tokens and prefill chunks, reading K/V through each sequence's block table
// (layout in cohost/kernels/paged_kv.h).
//
// Design. A CTA owns one (sequence, kv head, query tile, context split); a
// query tile is kRows (token, query head) rows of that kv head's GQA group, so
// a tile's K/V pages are read once for every head sharing them. The CTA walks
// its split's keys in tiles of 32 staged in shared memory; each warp keeps
// kRowsPerWarp rows with an online softmax (running max, sum, fp32
// accumulator). Lane j scores key j of the tile; the P*V product gives each
// lane head_dim / 32 output dims. Causality follows the CPU reference: new
// token i of sequence s sees logical keys [0, min(positions[i] + 1,
// context_lens[s])); a row that sees no key, and a token outside every
// sequence's run (padding), gets zeros. One extra z-slice of the grid writes
// those padding tokens.
//
// Split-K (flash-decoding). When the dense grid has fewer CTAs than the device
// keeps busy (decode of few sequences: batch 1 of an 8-kv-head model is 8
// CTAs), PlanPagedAttention cuts each sequence's context into num_splits
// ranges of whole key tiles. Each split writes its unnormalized fp32
// accumulator and its (max, sum) to a workspace, and MergeSplitsKernel
// combines them: out = sum_s acc_s 2^(m_s - M) / sum_s l_s 2^(m_s - M), M the
// largest m_s. With one split the kernel writes normalized bf16 rows itself.
//
// A call whose longest query tile has at least kAttnMmaRows rows runs on the
// tensor cores instead (attention_mma.cu), as PlanPagedAttention says.
//
// TODO(perf): a host plan of (sequence, tile) work items instead of the dense
// grid below, which launches empty CTAs for sequences shorter than
// max_query_len.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "attention_common.cuh"
#include "attention_plan.h"
#include "common/status_macros.h"
#include "cuda_ops.cuh"
#include "dispatch.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 4;
constexpr int kRows = kWarps * kRowsPerWarp;  // (token, head) rows per CTA
static_assert(kRows == kAttnRowsPerCta, "the plan counts this kernel's CTAs");
constexpr int kKeyTile = 32;  // keys per shared tile: one per lane

// Grid: (query tiles, num_kv_heads, num_seqs * num_splits + 1); block: kThreads.
template <int kHeadDim>
__global__ __launch_bounds__(kThreads) void PagedAttentionKernel(
    const __grid_constant__ AttnParams p) {
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per head row
  constexpr int kStride = kHeadDim + 8;  // shared row pitch: 16-byte reads by 8 lanes hit 32 banks
  constexpr int kPairs = kHeadDim / 64;  // bf16 pairs per lane in the output row
  constexpr int kDims = 2 * kPairs;      // output dims per lane

  __shared__ __align__(16) bf16 q_s[kRows * kStride];     // [kRows, kStride]
  __shared__ __align__(16) bf16 k_s[kKeyTile * kStride];  // [kKeyTile, kStride]
  __shared__ __align__(16) bf16 v_s[kKeyTile * kStride];  // [kKeyTile, kStride]

  const int seq = blockIdx.z / p.num_splits;
  const int split = blockIdx.z % p.num_splits;
  const int kv_head = blockIdx.y;
  if (seq == p.num_seqs) {
    ZeroPaddingTokens<kHeadDim>(p, kv_head);
    return;
  }
  const RowTile t = RowTile::Locate(p, seq, kv_head, kRows);
  if (t.rows == 0) return;  // block-uniform
  const int rows = t.rows;
  int cta_key_end = 0;
  for (int r = 0; r < rows; ++r) cta_key_end = max(cta_key_end, t.KeyEnd(p, r));
  // This split's keys [split_begin, split_end): whole key tiles, so that every
  // tile but the last of the context is full.
  const int split_keys =
      (cta_key_end + p.num_splits * kKeyTile - 1) / (p.num_splits * kKeyTile) * kKeyTile;
  const int split_begin = min(split * split_keys, cta_key_end);
  const int split_end = min(split_begin + split_keys, cta_key_end);

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;

  StageQTile<kHeadDim, kRows, kStride, kThreads>(p, t, q_s);

  // Row r of this CTA is warp + kWarps * s.
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDims];
  int key_end[kRowsPerWarp];
#pragma unroll
  for (int s = 0; s < kRowsPerWarp; ++s) {
    const int r = warp + kWarps * s;
    key_end[s] = min(t.KeyEnd(p, r), split_end);
    m[s] = -INFINITY;
    l[s] = 0.f;
#pragma unroll
    for (int d = 0; d < kDims; ++d) acc[s][d] = 0.f;
  }

  const int32_t* table = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  for (int kt = split_begin; kt < split_end; kt += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and q_s is written)
    StageKvTile<kHeadDim, kKeyTile, kStride, kThreads>(p, table, kv_head, kt, split_end, k_s, v_s);
    __syncthreads();

#pragma unroll
    for (int s = 0; s < kRowsPerWarp; ++s) {
      const int r = warp + kWarps * s;
      if (r >= rows || kt >= key_end[s]) continue;  // warp-uniform
      float dot = 0.f;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        float qf[8], kf[8];
        Unpack8(*reinterpret_cast<const uint4*>(q_s + r * kStride + c * 8), qf);
        Unpack8(*reinterpret_cast<const uint4*>(k_s + lane * kStride + c * 8), kf);
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(qf[e], kf[e], dot);
      }
      const float score = kt + lane < key_end[s] ? dot * p.scale_log2 : -INFINITY;
      // Key kt < key_end[s] is unmasked, so m_new is finite.
      const float m_new = fmaxf(m[s], WarpMax(score));
      const float prob = exp2f(score - m_new);
      const float correction = exp2f(m[s] - m_new);  // 0 on the first tile (m = -inf)
      l[s] = l[s] * correction + WarpSum(prob);
      m[s] = m_new;
#pragma unroll
      for (int d = 0; d < kDims; ++d) acc[s][d] *= correction;
#pragma unroll 8
      for (int j = 0; j < kKeyTile; ++j) {
        const float pj = __shfl_sync(0xffffffffu, prob, j);
        const __nv_bfloat162* vrow = reinterpret_cast<const __nv_bfloat162*>(v_s + j * kStride);
#pragma unroll
        for (int pp = 0; pp < kPairs; ++pp) {
          const float2 vf = __bfloat1622float2(vrow[32 * pp + lane]);
          acc[s][2 * pp] = fmaf(pj, vf.x, acc[s][2 * pp]);
          acc[s][2 * pp + 1] = fmaf(pj, vf.y, acc[s][2 * pp + 1]);
        }
      }
    }
  }

#pragma unroll
  for (int s = 0; s < kRowsPerWarp; ++s) {
    const int r = warp + kWarps * s;
    if (r >= rows) continue;
    if (p.num_splits > 1) {
      // Every split writes every row, (-inf, 0) and zeros where it saw no key.
      const int64_t part = static_cast<int64_t>(split) * p.num_tokens * p.num_heads + t.Index(p, r);
      float2* prow = reinterpret_cast<float2*>(p.part_acc + part * kHeadDim);
#pragma unroll
      for (int pp = 0; pp < kPairs; ++pp) {
        prow[32 * pp + lane] = make_float2(acc[s][2 * pp], acc[s][2 * pp + 1]);
      }
      if (lane == 0) p.part_ml[part] = make_float2(m[s], l[s]);
      continue;
    }
    // l == 0 only for a row that sees no key: zeros, as on the CPU.
    const float inv_l = l[s] > 0.f ? 1.f / l[s] : 0.f;
    __nv_bfloat162* orow = reinterpret_cast<__nv_bfloat162*>(p.out + t.Index(p, r) * kHeadDim);
#pragma unroll
    for (int pp = 0; pp < kPairs; ++pp) {
      orow[32 * pp + lane] =
          __floats2bfloat162_rn(acc[s][2 * pp] * inv_l, acc[s][2 * pp + 1] * inv_l);
    }
  }
}

// One warp per (token, head) of the sequences' runs: combines the splits'
// partial results into the bf16 output row. Grid: CeilDiv(rows, kWarps).
template <int kHeadDim>
__global__ __launch_bounds__(kThreads) void MergeSplitsKernel(
    const __grid_constant__ AttnParams p) {
  constexpr int kPairs = kHeadDim / 64;
  const int lo = p.seq_starts[0];
  const int hi = p.seq_starts[p.num_seqs];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= static_cast<int64_t>(hi - lo) * p.num_heads) return;
  const int lane = threadIdx.x & 31;
  const int64_t token_head = static_cast<int64_t>(lo) * p.num_heads + row;
  const int64_t split_stride = static_cast<int64_t>(p.num_tokens) * p.num_heads;
  float max_m = -INFINITY;
  for (int sp = 0; sp < p.num_splits; ++sp) {
    max_m = fmaxf(max_m, p.part_ml[sp * split_stride + token_head].x);
  }
  float acc[2 * kPairs] = {};
  float sum = 0.f;
  if (max_m != -INFINITY) {  // otherwise no split saw a key: zeros, as on the CPU
    for (int sp = 0; sp < p.num_splits; ++sp) {
      const int64_t part = sp * split_stride + token_head;
      const float2 ml = p.part_ml[part];
      if (ml.y == 0.f) continue;  // saw no key (its m may be -inf)
      const float weight = exp2f(ml.x - max_m);
      sum += ml.y * weight;
      const float2* prow = reinterpret_cast<const float2*>(p.part_acc + part * kHeadDim);
#pragma unroll
      for (int pp = 0; pp < kPairs; ++pp) {
        const float2 a = prow[32 * pp + lane];
        acc[2 * pp] = fmaf(a.x, weight, acc[2 * pp]);
        acc[2 * pp + 1] = fmaf(a.y, weight, acc[2 * pp + 1]);
      }
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  __nv_bfloat162* orow = reinterpret_cast<__nv_bfloat162*>(p.out + token_head * kHeadDim);
#pragma unroll
  for (int pp = 0; pp < kPairs; ++pp) {
    orow[32 * pp + lane] = __floats2bfloat162_rn(acc[2 * pp] * inv, acc[2 * pp + 1] * inv);
  }
}

}  // namespace

absl::Status LaunchPagedAttention(const bf16* q, int64_t q_stride, const BatchLayout& batch,
                                  const PagedKv& kv, int32_t num_heads, float scale, bf16* out,
                                  const AttentionPlan& plan, void* workspace, cudaStream_t stream) {
  if (batch.num_tokens < 0 || batch.num_seqs < 0 || num_heads <= 0 || kv.num_kv_heads <= 0 ||
      num_heads % kv.num_kv_heads != 0 || kv.block_size <= 0 || batch.max_blocks_per_seq < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: bad shape: num_tokens=", batch.num_tokens,
                     " num_seqs=", batch.num_seqs, " num_heads=", num_heads,
                     " num_kv_heads=", kv.num_kv_heads, " block_size=", kv.block_size));
  }
  if (kv.dtype != DType::kBF16) {
    return absl::UnimplementedError(absl::StrCat(
        "PagedAttention: KV pages of ", std::string(DTypeName(kv.dtype)), "; CUDA reads bf16"));
  }
  if (batch.num_tokens == 0) return absl::OkStatus();
  const int32_t splits = plan.num_splits;
  if (splits < 1 ||
      (splits > 1 && (plan.tensor_cores || workspace == nullptr || !IsAligned16(workspace)))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: ", splits, " splits on the tensor cores or without an aligned workspace"));
  }
  if (int64_t{batch.num_seqs} * splits >= 65535 || kv.num_kv_heads > 65535) {
    return absl::UnimplementedError(
        absl::StrCat("PagedAttention: grid too large: num_seqs=", batch.num_seqs,
                     " num_kv_heads=", kv.num_kv_heads));
  }
  if (!IsAligned16(q) || !IsAligned16(out) || !IsAligned16(kv.k) || !IsAligned16(kv.v)) {
    return absl::InvalidArgumentError(
        "PagedAttention: q, out and the KV pages must be 16-byte aligned");
  }
  if (q_stride < int64_t{num_heads} * kv.head_dim || q_stride % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("PagedAttention: q_stride ", q_stride,
                                                   " is not a multiple of 8 at least ",
                                                   int64_t{num_heads} * kv.head_dim));
  }
  const int32_t group = num_heads / kv.num_kv_heads;
  const int32_t max_q = MaxQueryLen(batch);
  AttnParams params{q,
                    q_stride,
                    static_cast<const bf16*>(kv.k),
                    static_cast<const bf16*>(kv.v),
                    batch.seq_starts,
                    batch.context_lens,
                    batch.block_tables,
                    batch.positions,
                    out,
                    nullptr,
                    nullptr,
                    splits,
                    num_heads,
                    kv.num_kv_heads,
                    kv.block_size,
                    batch.max_blocks_per_seq,
                    batch.num_seqs,
                    batch.num_tokens,
                    scale * kLog2e};
  if (splits > 1) {
    // The accumulators first (16-byte aligned rows), then the (m, l) pairs.
    params.part_acc = static_cast<float*>(workspace);
    params.part_ml = reinterpret_cast<float2*>(
        params.part_acc + int64_t{splits} * batch.num_tokens * num_heads * kv.head_dim);
  }
  if (plan.tensor_cores) return LaunchMmaAttention(params, kv.head_dim, max_q, stream);
  // The last z-slice zeroes padding tokens (outside every sequence's run).
  const dim3 grid(CeilDiv(static_cast<int64_t>(max_q) * group, kRows), kv.num_kv_heads,
                  batch.num_seqs * splits + 1);
  return DispatchHeadDim(kv.head_dim, "PagedAttention", [&](auto head_dim) {
    constexpr int kHeadDim = decltype(head_dim)::value;
    PagedAttentionKernel<kHeadDim><<<grid, kThreads, 0, stream>>>(params);
    RETURN_IF_ERROR(LaunchStatus("PagedAttentionKernel"));
    if (splits == 1 || batch.num_seqs == 0) return absl::OkStatus();
    // Rows of the sequences' runs; num_tokens bounds them (Validate upstream).
    MergeSplitsKernel<kHeadDim>
        <<<CeilDiv(int64_t{batch.num_tokens} * num_heads, kWarps), kThreads, 0, stream>>>(params);
    return LaunchStatus("MergeSplitsKernel");
  });
}

}  // namespace cohost::kernels::cuda
