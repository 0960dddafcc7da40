// RoPE on q and k (rotate-half's pairs (i, i + half), or adjacent ones
// (2i, 2i + 1): RopeSpec::pairs), fused with writing k and v into the paged KV
// cache at slot_mapping. One block per token: the token's cos/sin table is
// computed once into shared memory (angles in fp32, accurate sincosf), then the
// block rotates every q head, rotates and stores every k head, and copies v.
#include "absl/strings/str_cat.h"
#include "cuda_ops.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kRopeThreads = 128;

__global__ void RopeWriteKvKernel(
    bf16* __restrict__ q /*[num_tokens, num_heads, head_dim]*/,
    bf16* __restrict__ k /*[num_tokens, num_kv_heads, head_dim]*/,
    const bf16* __restrict__ v /*[num_tokens, num_kv_heads, head_dim]*/,
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
  // Pair i is (first * i, first * i + second) of a head.
  const int first = adjacent ? 2 : 1, second = adjacent ? 1 : half;

  bf16* qt = q + t * num_heads * head_dim;
  for (int j = threadIdx.x; j < num_heads * half; j += blockDim.x) {
    bf16* h = qt + (j / half) * head_dim;
    const int i = j % half;
    bf16* x = h + first * i;
    const float x1 = __bfloat162float(x[0]), x2 = __bfloat162float(x[second]);
    x[0] = __float2bfloat16_rn(x1 * cos_t[i] - x2 * sin_t[i]);
    x[second] = __float2bfloat16_rn(x2 * cos_t[i] + x1 * sin_t[i]);
  }

  const int64_t slot = slot_mapping[t];
  const int64_t row_elems = static_cast<int64_t>(num_kv_heads) * head_dim;
  bf16* kt = k + t * row_elems;
  bf16* kc = slot >= 0 ? k_cache + slot * row_elems : nullptr;
  // The element first * i of a head owns pair i (with first * i + second);
  // rotary_dim <= e is copied as is.
  for (int j = threadIdx.x; j < row_elems; j += blockDim.x) {
    const int e = j % head_dim;
    if (e < rotary_dim && e % first == 0 && e / first < half) {
      const int i = e / first;
      const float x1 = __bfloat162float(kt[j]), x2 = __bfloat162float(kt[j + second]);
      const bf16 r1 = __float2bfloat16_rn(x1 * cos_t[i] - x2 * sin_t[i]);
      const bf16 r2 = __float2bfloat16_rn(x2 * cos_t[i] + x1 * sin_t[i]);
      kt[j] = r1;
      kt[j + second] = r2;
      if (kc) {
        kc[j] = r1;
        kc[j + second] = r2;
      }
    } else if (e >= rotary_dim && kc) {
      kc[j] = kt[j];
    }
  }
  if (kc) {
    const bf16* vt = v + t * row_elems;
    bf16* vc = v_cache + slot * row_elems;
    for (int j = threadIdx.x; j < row_elems; j += blockDim.x) vc[j] = vt[j];
  }
}

}  // namespace

absl::Status LaunchRopeWriteKv(bf16* q, bf16* k, const bf16* v, const BatchLayout& batch,
                               int32_t num_heads, const RopeSpec& rope, const PagedKv& kv,
                               cudaStream_t stream) {
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
  if (batch.num_tokens == 0) return absl::OkStatus();
  const size_t smem = sizeof(float) * static_cast<size_t>(rotary_dim);
  RopeWriteKvKernel<<<batch.num_tokens, kRopeThreads, smem, stream>>>(
      q, k, v, batch.positions, batch.slot_mapping, rope.inv_freq, num_heads, kv.num_kv_heads,
      head_dim, rotary_dim, rope.pairs == RopePairs::kAdjacent, static_cast<bf16*>(kv.k),
      static_cast<bf16*>(kv.v));
  return LaunchStatus("RopeWriteKvKernel");
}

}  // namespace cohost::kernels::cuda
