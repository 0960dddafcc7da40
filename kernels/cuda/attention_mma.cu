// Paged attention on tensor cores, for long query tiles (prefill chunks):
// FlashAttention-2's loop with mma.sync.m16n8k16 (bf16 in, fp32 accumulate),
// which every target (sm_80, sm_90a) has.
//
// A CTA owns kAttnMmaRows = 64 (token, query head) rows of one kv head's GQA group,
// numbered as attention.cu's tiles (row gr of a sequence is token gr / group,
// head kv_head * group + gr % group): four warps of 16 rows. Q's fragments stay
// in registers. The CTA walks the keys in tiles of kKeys = 32 staged in shared
// memory through the block table; per tile a warp computes its 16 x 32 scores
// (S = Q K^T), masks each row at its causal end, updates each row's online
// softmax (running max and sum, in the exp2 domain) and adds P V to its
// 16 x head_dim fp32 accumulator. Fragment layouts (PTX ISA, m16n8k16), lane =
// 4 g + t: A holds rows g and g + 8, columns 2t, 2t + 1 and those + 8; B holds
// k rows 2t, 2t + 1 and those + 8 of column g; C holds rows g and g + 8,
// columns 2t, 2t + 1. So B of K^T is two adjacent dims of one key row, and the
// C fragments of two adjacent 8-key tiles of S are P's A fragment for 16 keys.
//
// TODO(perf): cp.async double buffering of the K/V tiles, ldmatrix (.trans for
// V), 64-key tiles in dynamic shared memory; wgmma and TMA on sm_90a.
#include "absl/strings/str_cat.h"
#include "attention_common.cuh"
#include "dispatch.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
static_assert(kAttnMmaRows == 16 * kWarps, "a warp computes one m16 tile of rows");
constexpr int kKeys = 32;  // keys per shared tile: 4 n8 tiles of S, 2 k16 steps of P V

// d += a * b on the tensor cores.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One register of two bf16, `lo` in the low half (the lower column or k row).
__device__ __forceinline__ uint32_t Pack(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t Pack(bf16 lo, bf16 hi) {
  __nv_bfloat162 h;
  h.x = lo;
  h.y = hi;
  return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t Load2(const bf16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Grid: (row tiles, num_kv_heads, num_seqs + 1); block: kThreads.
template <int kHeadDim>
__global__ __launch_bounds__(kThreads) void MmaAttentionKernel(
    const __grid_constant__ AttnParams p) {
  constexpr int kStride = kHeadDim + 8;     // shared row pitch: fragment reads hit 32 banks
  constexpr int kDimSteps = kHeadDim / 16;  // k16 steps of Q K^T
  constexpr int kDimTiles = kHeadDim / 8;   // n8 tiles of the output
  __shared__ __align__(16) bf16 q_s[kAttnMmaRows * kStride];
  __shared__ __align__(16) bf16 k_s[kKeys * kStride];
  __shared__ __align__(16) bf16 v_s[kKeys * kStride];
  __shared__ int cta_key_end_s;

  const int seq = blockIdx.z;
  const int kv_head = blockIdx.y;
  if (seq == p.num_seqs) {
    ZeroPaddingTokens<kHeadDim>(p, kv_head);
    return;
  }
  const RowTile tile = RowTile::Locate(p, seq, kv_head, kAttnMmaRows);
  if (tile.rows == 0) return;  // block-uniform
  const int rows = tile.rows;

  if (threadIdx.x == 0) cta_key_end_s = 0;
  __syncthreads();
  if (threadIdx.x < rows) atomicMax(&cta_key_end_s, tile.KeyEnd(p, threadIdx.x));
  StageQTile<kHeadDim, kAttnMmaRows, kStride, kThreads>(p, tile, q_s);
  __syncthreads();
  const int cta_key_end = cta_key_end_s;

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = warp * 16 + g;  // this thread's rows: row0 and row0 + 8
  const int end[2] = {tile.KeyEnd(p, row0), tile.KeyEnd(p, row0 + 8)};
  const int warp_end = __reduce_max_sync(kFullWarp, max(end[0], end[1]));

  uint32_t qa[kDimSteps][4];
#pragma unroll
  for (int ks = 0; ks < kDimSteps; ++ks) {
    const bf16* base = q_s + row0 * kStride + ks * 16 + 2 * t;
    qa[ks][0] = Load2(base);
    qa[ks][1] = Load2(base + 8 * kStride);
    qa[ks][2] = Load2(base + 8);
    qa[ks][3] = Load2(base + 8 * kStride + 8);
  }
  float o[kDimTiles][4];
#pragma unroll
  for (int dt = 0; dt < kDimTiles; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  // Per row half h (row0 + 8h): the running max, and this thread's share of
  // the running sum (its quad's four shares add up at the end).
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  const int32_t* table = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  for (int kt = 0; kt < cta_key_end; kt += kKeys) {
    __syncthreads();  // the previous tile is consumed
    StageKvTile<kHeadDim, kKeys, kStride, kThreads>(p, table, kv_head, kt, cta_key_end, k_s, v_s);
    __syncthreads();
    if (kt >= warp_end) continue;  // warp-uniform: none of its rows sees these keys

    float s[4][4];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kDimSteps; ++ks) {
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const bf16* kb = k_s + (nt * 8 + g) * kStride + ks * 16 + 2 * t;
        Mma(s[nt], qa[ks], Load2(kb), Load2(kb + 8));
      }
    }

    // Element e of tile nt: row half e / 2, key kt + 8 nt + 2t + e % 2.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = kt + nt * 8 + 2 * t + (e & 1);
        s[nt][e] = key < end[e >> 1] ? s[nt][e] * p.scale_log2 : -INFINITY;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[nt][e]);
      }
    }
    float base[2], correction[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(kFullWarp, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(kFullWarp, tile_max[h], 2));
      const float m_new = fmaxf(m[h], tile_max[h]);
      // A row with no key yet keeps m = -inf: every probability is 0 and the
      // (empty) accumulator is scaled by 0, never by NaN.
      base[h] = m_new == -INFINITY ? 0.f : m_new;
      correction[h] = exp2f(m[h] - base[h]);
      m[h] = m_new;
      l[h] *= correction[h];
    }
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - base[e >> 1]);
        l[e >> 1] += s[nt][e];
      }
    }
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      o[dt][0] *= correction[0];
      o[dt][1] *= correction[0];
      o[dt][2] *= correction[1];
      o[dt][3] *= correction[1];
    }
#pragma unroll
    for (int kc = 0; kc < kKeys / 16; ++kc) {
      const uint32_t pa[4] = {Pack(s[2 * kc][0], s[2 * kc][1]), Pack(s[2 * kc][2], s[2 * kc][3]),
                              Pack(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              Pack(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dt = 0; dt < kDimTiles; ++dt) {
        const bf16* vb = v_s + (kc * 16 + 2 * t) * kStride + dt * 8 + g;
        Mma(o[dt], pa, Pack(vb[0], vb[kStride]), Pack(vb[8 * kStride], vb[9 * kStride]));
      }
    }
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(kFullWarp, l[h], 1);
    l[h] += __shfl_xor_sync(kFullWarp, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + 8 * h;
    if (r >= rows) continue;
    // l == 0 only for a row that sees no key: zeros, as on the CPU.
    const float inv_l = l[h] > 0.f ? 1.f / l[h] : 0.f;
    bf16* orow = p.out + tile.Index(p, r) * kHeadDim;
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(orow + dt * 8 + 2 * t) =
          __floats2bfloat162_rn(o[dt][2 * h] * inv_l, o[dt][2 * h + 1] * inv_l);
    }
  }
}

}  // namespace

absl::Status LaunchMmaAttention(const AttnParams& p, int head_dim, int32_t max_q,
                                cudaStream_t stream) {
  const int64_t group = p.num_heads / p.num_kv_heads;
  const dim3 grid(CeilDiv(int64_t{max_q} * group, kAttnMmaRows), p.num_kv_heads, p.num_seqs + 1);
  return DispatchHeadDim(head_dim, "PagedAttention", [&](auto hd) {
    MmaAttentionKernel<decltype(hd)::value><<<grid, kThreads, 0, stream>>>(p);
    return LaunchStatus("MmaAttentionKernel");
  });
}

}  // namespace cohost::kernels::cuda
