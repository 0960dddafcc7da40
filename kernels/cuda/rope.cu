// RoPE on q and k (rotate-half's pairs (i, i + half), or adjacent ones
// (2i, 2i + 1): RopeSpec::pairs), fused with writing k and v into the paged KV
// cache at slot_mapping. One block per token: the token's cos/sin table is
// computed once into shared memory (angles in fp32, accurate sincosf), then the
// block rotates every q head, rotates and stores every k head, and copies v.
// Accesses are bf16 pairs: a thread turns one adjacent pair, or two
// rotate-half pairs (2u, 2u + 1 with half + 2u, half + 2u + 1); K's unturned
// dims and V are copied 16 bytes at a time where rows allow.
#include "absl/strings/str_cat.h"
#include "cuda_ops.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kRopeThreads = 128;

// Turns unit u of the head row at h in place, and stores the turned values at
// c too when c is not null.
__device__ __forceinline__ void TurnUnit(bf16* h, bf16* c, int u, bool adjacent, int half,
                                         const float* cos_t, const float* sin_t) {
  if (adjacent) {
    auto* x = reinterpret_cast<__nv_bfloat162*>(h) + u;
    const float2 v = __bfloat1622float2(*x);
    const __nv_bfloat162 r =
        __floats2bfloat162_rn(v.x * cos_t[u] - v.y * sin_t[u], v.y * cos_t[u] + v.x * sin_t[u]);
    *x = r;
    if (c) reinterpret_cast<__nv_bfloat162*>(c)[u] = r;
    return;
  }
  auto* lo = reinterpret_cast<__nv_bfloat162*>(h + 2 * u);
  auto* hi = reinterpret_cast<__nv_bfloat162*>(h + half + 2 * u);
  const float2 a = __bfloat1622float2(*lo), b = __bfloat1622float2(*hi);
  const float c0 = cos_t[2 * u], s0 = sin_t[2 * u], c1 = cos_t[2 * u + 1], s1 = sin_t[2 * u + 1];
  // Pair 2u is (a.x, b.x), pair 2u + 1 is (a.y, b.y).
  const __nv_bfloat162 rlo = __floats2bfloat162_rn(a.x * c0 - b.x * s0, a.y * c1 - b.y * s1);
  const __nv_bfloat162 rhi = __floats2bfloat162_rn(b.x * c0 + a.x * s0, b.y * c1 + a.y * s1);
  *lo = rlo;
  *hi = rhi;
  if (c) {
    *reinterpret_cast<__nv_bfloat162*>(c + 2 * u) = rlo;
    *reinterpret_cast<__nv_bfloat162*>(c + half + 2 * u) = rhi;
  }
}

// n bf16 from src to dst, 16 bytes at a time when both allow it.
__device__ __forceinline__ void CopyRow(bf16* dst, const bf16* src, int64_t n) {
  if (n % 8 == 0 && IsAligned16(dst) && IsAligned16(src)) {
    for (int64_t i = threadIdx.x; i < n / 8; i += blockDim.x) {
      reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
  }
}

// q, k and v may be one tensor's rows ([q | k | v] per token): not restrict.
__global__ void RopeWriteKvKernel(
    bf16* q, bf16* k, const bf16* v, int64_t q_stride, int64_t kv_stride,
    const int32_t* __restrict__ positions /*[num_tokens]*/,
    const int32_t* __restrict__ slot_mapping /*[num_tokens]*/,
    const float* __restrict__ inv_freq /*[rotary_dim / 2]*/, int32_t num_heads,
    int32_t num_kv_heads, int32_t head_dim, int32_t rotary_dim, bool adjacent,
    bf16* __restrict__ k_cache /*[num_blocks, block_size, num_kv_heads, head_dim]*/,
    bf16* __restrict__ v_cache /*[num_blocks, block_size, num_kv_heads, head_dim]*/) {
  extern __shared__ float trig[];  // [2, rotary_dim / 2]: cos then sin
  const int64_t t = blockIdx.x;
  const int half = rotary_dim / 2;
  float* cos_t = trig;
  float* sin_t = trig + half;
  const float pos = static_cast<float>(positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    sincosf(pos * inv_freq[i], &sin_t[i], &cos_t[i]);
  }
  __syncthreads();
  const int units = adjacent ? half : half / 2;  // per head

  bf16* qt = q + t * q_stride;
  for (int j = threadIdx.x; j < num_heads * units; j += blockDim.x) {
    TurnUnit(qt + (j / units) * head_dim, nullptr, j % units, adjacent, half, cos_t, sin_t);
  }

  const int64_t slot = slot_mapping[t];
  const int64_t row_elems = static_cast<int64_t>(num_kv_heads) * head_dim;
  bf16* kt = k + t * kv_stride;
  bf16* kc = slot >= 0 ? k_cache + slot * row_elems : nullptr;
  for (int j = threadIdx.x; j < num_kv_heads * units; j += blockDim.x) {
    const int64_t head = (j / units) * static_cast<int64_t>(head_dim);
    TurnUnit(kt + head, kc ? kc + head : nullptr, j % units, adjacent, half, cos_t, sin_t);
  }
  if (kc == nullptr) return;
  // Dims past rotary_dim are stored as they are.
  const int tail = head_dim - rotary_dim;
  for (int j = threadIdx.x; j < num_kv_heads * tail; j += blockDim.x) {
    const int64_t e = (j / tail) * static_cast<int64_t>(head_dim) + rotary_dim + j % tail;
    kc[e] = kt[e];
  }
  CopyRow(v_cache + slot * row_elems, v + t * kv_stride, row_elems);
}

}  // namespace

absl::Status LaunchRopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                               const RopeSpec& rope, const PagedKv& kv, cudaStream_t stream) {
  auto* q = static_cast<bf16*>(qkv.q);
  auto* k = static_cast<bf16*>(qkv.k);
  const auto* v = static_cast<const bf16*>(qkv.v);
  const int32_t head_dim = kv.head_dim;
  const int32_t rotary_dim = rope.rotary_dim;
  if (batch.num_tokens < 0 || num_heads <= 0 || kv.num_kv_heads <= 0 || head_dim <= 0 ||
      rotary_dim < 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RopeWriteKv: bad shape: num_tokens=", batch.num_tokens, " num_heads=", num_heads,
        " num_kv_heads=", kv.num_kv_heads, " head_dim=", head_dim, " rotary_dim=", rotary_dim));
  }
  if (kv.dtype != DType::kBF16) {
    return absl::UnimplementedError(absl::StrCat(
        "RopeWriteKv: KV pages of ", std::string(DTypeName(kv.dtype)), "; CUDA writes bf16"));
  }
  // Pairs of bf16 at a time: every head's turned dims in pairs of pairs.
  if (rotary_dim % 4 != 0 || head_dim % 2 != 0) {
    return absl::UnimplementedError(absl::StrCat("RopeWriteKv: rotary_dim ", rotary_dim,
                                                 " and head_dim ", head_dim,
                                                 " (CUDA turns multiples of 4 in even heads)"));
  }
  auto aligned4 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 4 == 0; };
  if (!aligned4(q) || !aligned4(k) || !aligned4(v) || !aligned4(kv.k) || !aligned4(kv.v)) {
    return absl::InvalidArgumentError("RopeWriteKv: q, k, v and the pages must be 4-byte aligned");
  }
  if (qkv.q_stride < int64_t{num_heads} * head_dim || qkv.q_stride % 2 != 0 ||
      qkv.kv_stride < int64_t{kv.num_kv_heads} * head_dim || qkv.kv_stride % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("RopeWriteKv: strides ", qkv.q_stride, " and ",
                                                   qkv.kv_stride,
                                                   " are odd or shorter than a row"));
  }
  if (batch.num_tokens == 0) return absl::OkStatus();
  const size_t smem = sizeof(float) * static_cast<size_t>(rotary_dim);
  RopeWriteKvKernel<<<batch.num_tokens, kRopeThreads, smem, stream>>>(
      q, k, v, qkv.q_stride, qkv.kv_stride, batch.positions, batch.slot_mapping, rope.inv_freq,
      num_heads, kv.num_kv_heads, head_dim, rotary_dim, rope.pairs == RopePairs::kAdjacent,
      static_cast<bf16*>(kv.k), static_cast<bf16*>(kv.v));
  return LaunchStatus("RopeWriteKvKernel");
}

}  // namespace cohost::kernels::cuda
