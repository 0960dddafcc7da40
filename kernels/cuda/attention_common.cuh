// What the paged attention kernels share (attention.cu: CUDA cores, with
// split-K; attention_mma.cu: tensor cores, for long query tiles): their
// parameters, the padding rows, and staging K/V tiles through the block table.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "attention_plan.h"
#include "cuda_common.cuh"

namespace cohost::kernels::cuda {

inline constexpr float kLog2e = 1.4426950408889634f;

struct AttnParams {
  const bf16* q;                // token t's heads at q + t * q_stride (QkvRows)
  int64_t q_stride;             // elements, a multiple of 8
  const bf16* k_cache;          // [num_blocks, block_size, num_kv_heads, head_dim]
  const bf16* v_cache;          // [num_blocks, block_size, num_kv_heads, head_dim]
  const int32_t* seq_starts;    // [num_seqs + 1]
  const int32_t* context_lens;  // [num_seqs]
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
  const int32_t* positions;     // [num_tokens]
  bf16* out;                    // [num_tokens, num_heads, head_dim]
  // With num_splits > 1: each split's unnormalized accumulator and (m, l)
  // (scores in the exp2 domain), indexed [split][token][head].
  float* part_acc;  // [num_splits, num_tokens, num_heads, head_dim]
  float2* part_ml;  // [num_splits, num_tokens, num_heads]
  int32_t num_splits;
  int32_t num_heads;
  int32_t num_kv_heads;
  int32_t block_size;
  int32_t max_blocks_per_seq;
  int32_t num_seqs;
  int32_t num_tokens;
  float scale_log2;  // softmax scale * log2(e): scores live in the exp2 domain
};

// Zeros out[t] for the tokens outside every sequence's run, for kv_head's
// query heads.
template <int kHeadDim>
__device__ void ZeroPaddingTokens(const AttnParams& p, int kv_head) {
  const int group = p.num_heads / p.num_kv_heads;
  const int lo = p.num_seqs > 0 ? p.seq_starts[0] : 0;
  const int hi = p.num_seqs > 0 ? p.seq_starts[p.num_seqs] : 0;
  for (int t = blockIdx.x; t < p.num_tokens; t += gridDim.x) {
    if (t >= lo && t < hi) continue;
    uint4* row = reinterpret_cast<uint4*>(
        p.out + (static_cast<int64_t>(t) * p.num_heads + kv_head * group) * kHeadDim);
    for (int i = threadIdx.x; i < group * kHeadDim / 8; i += blockDim.x)
      row[i] = make_uint4(0, 0, 0, 0);
  }
}

// A CTA's query rows: up to `rows` (token, query head) rows of one sequence's
// run, from its row row_begin (row gr of the run is token q_begin + gr /
// group, head kv_head * group + gr % group).
struct RowTile {
  int kv_head, group, q_begin, row_begin, rows, context_len;

  // The tile of blockIdx.x's tiles of `tile_rows` in sequence `seq`; rows is
  // 0 (block-uniformly) when the sequence has no rows there.
  __device__ static RowTile Locate(const AttnParams& p, int seq, int kv_head, int tile_rows) {
    RowTile t;
    t.kv_head = kv_head;
    t.group = p.num_heads / p.num_kv_heads;
    t.q_begin = p.seq_starts[seq];
    t.row_begin = blockIdx.x * tile_rows;
    const int run_rows = (p.seq_starts[seq + 1] - t.q_begin) * t.group;
    t.rows = max(0, min(tile_rows, run_rows - t.row_begin));
    t.context_len = p.context_lens[seq];
    return t;
  }
  __device__ int64_t Token(int r) const { return q_begin + (row_begin + r) / group; }
  __device__ int Head(int r) const { return kv_head * group + (row_begin + r) % group; }
  // Row r sees keys [0, KeyEnd(p, r)); rows past `rows` see none.
  __device__ int KeyEnd(const AttnParams& p, int r) const {
    return r < rows ? min(p.positions[Token(r)] + 1, context_len) : 0;
  }
  // Row r's q head (QkvRows: token t's heads at q + t * q_stride).
  __device__ const bf16* Q(const AttnParams& p, int r, int head_dim) const {
    return p.q + Token(r) * p.q_stride + static_cast<int64_t>(Head(r)) * head_dim;
  }
  // Row r's place in [num_tokens, num_heads] (out, and a split's partials).
  __device__ int64_t Index(const AttnParams& p, int r) const {
    return Token(r) * p.num_heads + Head(r);
  }
};

// Copies the tile's q rows into q_s ([kTileRows, kStride] bf16), the CTA's
// kThreads threads together; rows past t.rows become zeros.
template <int kHeadDim, int kTileRows, int kStride, int kThreads>
__device__ __forceinline__ void StageQTile(const AttnParams& p, const RowTile& t, bf16* q_s) {
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per head row
  for (int i = threadIdx.x; i < kTileRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    uint4 w = make_uint4(0, 0, 0, 0);
    if (r < t.rows) w = reinterpret_cast<const uint4*>(t.Q(p, r, kHeadDim))[c];
    *reinterpret_cast<uint4*>(q_s + r * kStride + c * 8) = w;
  }
}

// Copies keys [first, first + kKeys) of kv_head's K and V rows into k_s and
// v_s ([kKeys, kStride] bf16), the CTA's kThreads threads together; keys at
// or past `end` become zeros and are never read: they may be unwritten
// memory, and a NaN in V would survive a zero probability.
template <int kHeadDim, int kKeys, int kStride, int kThreads>
__device__ __forceinline__ void StageKvTile(const AttnParams& p, const int32_t* table, int kv_head,
                                            int first, int end, bf16* k_s, bf16* v_s) {
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per head row
  for (int i = threadIdx.x; i < kKeys * kChunks; i += kThreads) {
    const int j = i / kChunks, c = i % kChunks;
    const int key = first + j;
    uint4 kw = make_uint4(0, 0, 0, 0), vw = make_uint4(0, 0, 0, 0);
    if (key < end) {
      const int64_t page = table[key / p.block_size];
      const int64_t off =
          ((page * p.block_size + key % p.block_size) * p.num_kv_heads + kv_head) * kHeadDim;
      kw = reinterpret_cast<const uint4*>(p.k_cache + off)[c];
      vw = reinterpret_cast<const uint4*>(p.v_cache + off)[c];
    }
    *reinterpret_cast<uint4*>(k_s + j * kStride + c * 8) = kw;
    *reinterpret_cast<uint4*>(v_s + j * kStride + c * 8) = vw;
  }
}

// The tensor-core kernel (attention_mma.cu) on a grid of (CeilDiv(max_q *
// group, kAttnMmaRows), num_kv_heads, num_seqs + 1), one split.
absl::Status LaunchMmaAttention(const AttnParams& p, int head_dim, int32_t max_q,
                                cudaStream_t stream);

}  // namespace cohost::kernels::cuda
