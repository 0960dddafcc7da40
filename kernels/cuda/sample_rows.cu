// Backend::SampleRows on CUDA: one block per row draws the row's token, so a
// sampled step brings back ids, not [rows, vocab] logits. The thresholds of
// SampleSpec are found by bisection on the weights' bit patterns (a weight is
// a float >= 0, so its bits order as its value): the k-th largest by counting,
// the top-p cut by mass. Masses are doubles summed in a fixed order, so a row
// draws the same token on every run; the CPU reference (kernels/cpu/
// sample_rows.cc) sums in another order, so the two can differ where a draw
// or a cut falls within rounding of a boundary.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "cuda_ops.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr float kMinExponent = -104.f;  // expf below this is 0 in float

// Block-wide sum in a fixed order (BlockReduce); every thread gets it.
template <typename T>
__device__ __forceinline__ T BlockSum(T v, T* scratch /*[kWarps]*/) {
  return BlockReduce(v, scratch, kWarps, SumOp{});
}

struct RowSampler {
  const float* x;
  int32_t width;
  float max;
  float inv_t;
  bool inf_max;  // the max is +inf: those tokens share the mass

  __device__ float Weight(int32_t i) const {
    const float v = x[i];
    if (inf_max) return v == INFINITY ? 1.f : 0.f;
    const float z = (v - max) * inv_t;  // NaN fails the test: weight 0
    // At most 1, as the bisections' upper end assumes (expf's error bound
    // does not promise it at 0).
    return z >= kMinExponent ? fminf(expf(z), 1.f) : 0.f;
  }
  // Tokens (this thread's share) whose weight's bits are at least `bits`.
  __device__ int32_t CountAtLeast(uint32_t bits) const {
    int32_t n = 0;
    for (int32_t i = threadIdx.x; i < width; i += kThreads) n += __float_as_uint(Weight(i)) >= bits;
    return n;
  }
  // Mass (this thread's share) of the weights > 0 at least `cut` and whose
  // bits are at least `bits`.
  __device__ double MassAtLeast(float cut, uint32_t bits) const {
    double m = 0;
    for (int32_t i = threadIdx.x; i < width; i += kThreads) {
      const float w = Weight(i);
      if (w > 0.f && w >= cut && __float_as_uint(w) >= bits) m += w;
    }
    return m;
  }
};

__global__ __launch_bounds__(kThreads) void SampleRowsKernel(const float* __restrict__ x,
                                                             int32_t width,
                                                             const SampleSpec* __restrict__ specs,
                                                             int32_t* __restrict__ out) {
  __shared__ double dscratch[kWarps];
  __shared__ int32_t iscratch[kWarps];
  __shared__ float best_s[kWarps];
  __shared__ int32_t best_id_s[kWarps];
  __shared__ int32_t found_s, last_s;
  const SampleSpec s = specs[blockIdx.x];
  RowSampler row{x + static_cast<int64_t>(blockIdx.x) * width, width, -INFINITY, 0.f, false};

  // The max and its first column (NaN never wins; 0 when nothing is above -inf).
  Ranked share{-INFINITY, INT32_MAX};  // this thread's columns' best
  for (int32_t i = threadIdx.x; i < width; i += kThreads) {
    if (row.x[i] > share.value) share = {row.x[i], i};
  }
  const Ranked top = BlockBest(share, best_s, best_id_s, kWarps);
  const float best = top.value;
  const int32_t best_i = top.id;
  const int32_t argmax = best == -INFINITY ? 0 : best_i;
  const float inv_t = s.temperature > 0.f ? 1.f / s.temperature : 0.f;
  if (!(s.temperature > 0.f) || best == -INFINITY || isinf(inv_t)) {  // NaN too: greedy
    if (threadIdx.x == 0) out[blockIdx.x] = argmax;
    return;  // block-uniform
  }
  row.max = best;
  row.inv_t = inv_t;
  row.inf_max = best == INFINITY;

  float cut = 0.f;
  if (s.top_k > 0 && s.top_k < width) {
    // The largest bits with at least top_k weights at or above them.
    uint32_t lo = 0, hi = __float_as_uint(1.f);  // weights are in [0, 1]
    while (lo < hi) {
      const uint32_t mid = hi - (hi - lo) / 2;
      if (BlockSum(row.CountAtLeast(mid), iscratch) >= s.top_k) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    cut = __uint_as_float(lo);
  }
  if (s.top_p < 1.f) {
    const double need = static_cast<double>(s.top_p) * BlockSum(row.MassAtLeast(cut, 0), dscratch);
    // From the top-k cut up: at it, the mass is the whole total (>= need).
    uint32_t lo = __float_as_uint(cut), hi = __float_as_uint(1.f);
    while (lo < hi) {
      const uint32_t mid = hi - (hi - lo) / 2;
      if (BlockSum(row.MassAtLeast(cut, mid), dscratch) >= need) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    cut = fmaxf(cut, __uint_as_float(lo));
  }
  cut = fmaxf(cut, s.min_p);

  // The draw: the first id, in order, whose kept mass so far passes the target.
  const double target =
      static_cast<double>(s.uniform) * BlockSum(row.MassAtLeast(cut, 0), dscratch);
  if (threadIdx.x == 0) found_s = INT32_MAX;
  int32_t my_last = -1;  // this thread's largest kept id
  const int lane = threadIdx.x & 31;
  double carry = 0;  // kept mass of the ids before this chunk
  for (int32_t base = 0; base < width; base += kThreads) {
    const int32_t i = base + threadIdx.x;
    const float w = i < width ? row.Weight(i) : 0.f;
    const double mine = w > 0.f && w >= cut ? w : 0.0;
    // Inclusive scan over the chunk, in id order: lanes, then the warps before.
    double scan = mine;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double up = __shfl_up_sync(kFullWarp, scan, o);
      if (lane >= o) scan += up;
    }
    __syncthreads();  // dscratch is free
    if (lane == 31) dscratch[threadIdx.x >> 5] = scan;
    __syncthreads();
    double chunk = 0;
    for (int wi = 0; wi < kWarps; ++wi) {
      if (wi < (threadIdx.x >> 5)) scan += dscratch[wi];
      chunk += dscratch[wi];
    }
    if (mine > 0) my_last = i;
    // The lowest id past the target wins, one atomic per warp: rounding
    // cannot make two threads disagree.
    const unsigned past = __ballot_sync(kFullWarp, mine > 0 && target < carry + scan);
    if (past != 0 && lane == __ffs(past) - 1) atomicMin(&found_s, i);
    __syncthreads();
    if (found_s != INT32_MAX) break;  // block-uniform after the barrier
    carry += chunk;
  }
  if (found_s != INT32_MAX) {  // block-uniform
    if (threadIdx.x == 0) out[blockIdx.x] = found_s;
    return;
  }
  // Rounding put the target at the very end: the last kept id.
  if (threadIdx.x == 0) last_s = argmax;
  __syncthreads();
  if (my_last >= 0) atomicMax(&last_s, my_last);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = last_s;
}

// Grid: (blocks of kThreads logits, rows). A row without a mask returns at
// once; a masked one reads a word per 64 logits (from L1 for a warp's 32).
__global__ void MaskRowsKernel(float* __restrict__ x, int32_t width,
                               const int32_t* __restrict__ mask_of,
                               const uint64_t* __restrict__ masks) {
  const int32_t m = mask_of[blockIdx.y];
  if (m < 0) return;
  const int32_t t = static_cast<int32_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= width) return;
  const int64_t words = (static_cast<int64_t>(width) + 63) / 64;
  if (((masks[m * words + t / 64] >> (t % 64)) & 1ull) == 0) {
    x[static_cast<int64_t>(blockIdx.y) * width + t] = -INFINITY;
  }
}

// A row names each token once, so no two threads write one logit. IEEE
// division and multiplication (no fast math): the host Sampler's bits.
__global__ void ApplyPenaltiesKernel(float* __restrict__ x, int32_t width,
                                     const int32_t* __restrict__ starts,
                                     const PenaltyTerm* __restrict__ terms,
                                     float* __restrict__ saved) {
  float* row = x + static_cast<int64_t>(blockIdx.x) * width;
  for (int32_t i = starts[blockIdx.x] + threadIdx.x; i < starts[blockIdx.x + 1]; i += blockDim.x) {
    const PenaltyTerm t = terms[i];
    if (t.token < 0 || t.token >= width) continue;
    float l = row[t.token];
    if (saved != nullptr) saved[i] = l;
    l = __fadd_rn(l, t.add);
    if (t.repetition != 1.f) l = l > 0.f ? __fdiv_rn(l, t.repetition) : __fmul_rn(l, t.repetition);
    row[t.token] = __fsub_rn(l, t.subtract);
  }
}

__global__ void RestoreLogitsKernel(float* __restrict__ x, int32_t width,
                                    const int32_t* __restrict__ starts,
                                    const PenaltyTerm* __restrict__ terms,
                                    const float* __restrict__ saved) {
  float* row = x + static_cast<int64_t>(blockIdx.x) * width;
  for (int32_t i = starts[blockIdx.x] + threadIdx.x; i < starts[blockIdx.x + 1]; i += blockDim.x) {
    const int32_t token = terms[i].token;
    if (token >= 0 && token < width) row[token] = saved[i];
  }
}

absl::Status CheckPenaltyShape(const char* op, int32_t rows, int32_t width) {
  if (rows < 0 || width < 0) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": bad shape ", rows, "x", width));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LaunchApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                                  const PenaltyTerm* terms, float* saved, cudaStream_t stream) {
  if (absl::Status s = CheckPenaltyShape("ApplyPenalties", rows, width); !s.ok()) return s;
  if (rows == 0) return absl::OkStatus();
  ApplyPenaltiesKernel<<<rows, kThreads, 0, stream>>>(x, width, starts, terms, saved);
  return LaunchStatus("ApplyPenaltiesKernel");
}

absl::Status LaunchMaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
                            const uint64_t* masks, cudaStream_t stream) {
  if (rows < 0 || width < 0 || rows > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MaskRows: bad shape ", rows, "x", width));
  }
  if (rows == 0 || width == 0) return absl::OkStatus();
  const dim3 grid((width + kThreads - 1) / kThreads, rows);
  MaskRowsKernel<<<grid, kThreads, 0, stream>>>(x, width, mask_of, masks);
  return LaunchStatus("MaskRowsKernel");
}

absl::Status LaunchRestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                                 const PenaltyTerm* terms, const float* saved,
                                 cudaStream_t stream) {
  if (absl::Status s = CheckPenaltyShape("RestoreLogits", rows, width); !s.ok()) return s;
  if (rows == 0) return absl::OkStatus();
  RestoreLogitsKernel<<<rows, kThreads, 0, stream>>>(x, width, starts, terms, saved);
  return LaunchStatus("RestoreLogitsKernel");
}

absl::Status LaunchSampleRows(const float* x, int32_t rows, int32_t width, const SampleSpec* specs,
                              int32_t* out, cudaStream_t stream) {
  if (rows < 0 || width < 0) {
    return absl::InvalidArgumentError(absl::StrCat("SampleRows: bad shape ", rows, "x", width));
  }
  if (rows == 0) return absl::OkStatus();
  SampleRowsKernel<<<rows, kThreads, 0, stream>>>(x, width, specs, out);
  return LaunchStatus("SampleRowsKernel");
}

}  // namespace cohost::kernels::cuda
