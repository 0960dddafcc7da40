// Shared helpers of the CUDA kernels: CUDA errors as absl::Status, bf16 <->
// fp32 conversions of 8-element (16-byte) vectors for coalesced access, and
// warp and block reductions in a fixed order.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohost::kernels::cuda {

using bf16 = __nv_bfloat16;

// Allocation failures are the caller's to handle (RESOURCE_EXHAUSTED); every
// other CUDA failure is INTERNAL, naming the call that failed.
inline absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  std::string msg =
      absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

// Call after every kernel launch: configuration errors surface here, at once.
inline absl::Status LaunchStatus(const char* kernel) {
  return CudaStatus(cudaGetLastError(), kernel);
}

__host__ __device__ inline bool IsAligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

inline unsigned CeilDiv(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// 8 bf16 in one 16-byte word.
__device__ __forceinline__ void Unpack8(const uint4& w, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

__device__ __forceinline__ uint4 Pack8(const float (&f)[8]) {
  uint4 w;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&w);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return w;
}

inline constexpr unsigned kFullWarp = 0xffffffffu;

// `op` over a warp by a butterfly: every lane gets the result.
template <typename T, typename Op>
__device__ __forceinline__ T WarpReduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFullWarp, v, o));
  return v;
}

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__device__ __forceinline__ float WarpSum(float v) { return WarpReduce(v, SumOp{}); }
__device__ __forceinline__ float WarpMax(float v) { return WarpReduce(v, MaxOp{}); }

// `op` over a block of `num_warps` full warps in a fixed order (each warp's
// butterfly, then the warps' results folded from warp 0 up), so a sum has
// the same bits every run; every thread gets the result. `scratch` holds
// num_warps values. It starts with a barrier, so consecutive calls may share
// one scratch array.
template <typename T, typename Op>
__device__ __forceinline__ T BlockReduce(T v, T* scratch, int num_warps, Op op) {
  v = WarpReduce(v, op);
  __syncthreads();  // scratch is free
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < num_warps; ++w) total = op(total, scratch[w]);
  return total;
}

// A logit and its column, ranked: the higher logit first, then the lower
// column (a sentinel column INT32_MAX ranks last among equals).
struct Ranked {
  float value;
  int32_t id;
  __device__ __forceinline__ bool Beats(const Ranked& o) const {
    return value != o.value ? value > o.value : id < o.id;
  }
};

// The best Ranked of a block of `num_warps` full warps (as BlockReduce:
// warps' butterflies, then the warps in order); every thread gets it.
// value_s and id_s hold num_warps entries each.
__device__ __forceinline__ Ranked BlockBest(Ranked r, float* value_s, int32_t* id_s,
                                            int num_warps) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const Ranked other{__shfl_xor_sync(kFullWarp, r.value, o), __shfl_xor_sync(kFullWarp, r.id, o)};
    if (other.Beats(r)) r = other;
  }
  __syncthreads();  // the scratch is free
  if ((threadIdx.x & 31) == 0) {
    value_s[threadIdx.x >> 5] = r.value;
    id_s[threadIdx.x >> 5] = r.id;
  }
  __syncthreads();
  r = {value_s[0], id_s[0]};
  for (int w = 1; w < num_warps; ++w) {
    const Ranked other{value_s[w], id_s[w]};
    if (other.Beats(r)) r = other;
  }
  return r;
}

}  // namespace cohost::kernels::cuda
