// Backend::RowLogprobs on CUDA: one block per row, so that a request asking
// for logprobs brings back 1 + top_n (id, logprob) pairs, not its row of
// logits. Each thread keeps the top_n best of its share of the row (ids t,
// t + kThreads, ...) sorted in shared memory, column t of a [top_n, kThreads]
// array (no bank conflicts); then top_n block-wide rounds take the best head
// of all threads' lists, and its thread (id % kThreads) moves on. The
// normalizer is a float sum of expf in a fixed order: the same bits every
// run, within a few ulp of the CPU reference's double sum.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "cuda_ops.cuh"

namespace cohost::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float Finite(float v) { return isnan(v) ? -INFINITY : v; }

__device__ __forceinline__ float Logprob(float v, float lse) {
  return isfinite(v) && isfinite(lse) ? v - lse : -INFINITY;
}

__global__ __launch_bounds__(kThreads) void RowLogprobsKernel(const float* __restrict__ x,
                                                              int32_t width,
                                                              const int32_t* __restrict__ chosen,
                                                              int32_t top_n,
                                                              TokenLogprob* __restrict__ out) {
  extern __shared__ float lists[];  // values [top_n, kThreads], then ids [top_n, kThreads]
  int32_t* list_ids = reinterpret_cast<int32_t*>(lists + top_n * kThreads);
  __shared__ float value_s[kWarps];
  __shared__ int32_t id_s[kWarps];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * width;
  TokenLogprob* row_out = out + static_cast<int64_t>(blockIdx.x) * (1 + top_n);
  const int t = threadIdx.x;
  auto value_at = [&](int k) -> float& { return lists[k * kThreads + t]; };
  auto id_at = [&](int k) -> int32_t& { return list_ids[k * kThreads + t]; };

  // This thread's share: its max, and its top_n by insertion (its ids rise,
  // so an equal value never passes one already kept: ties to the lower id).
  float max = -INFINITY;
  int count = 0;
  for (int32_t i = t; i < width; i += kThreads) {
    const float v = Finite(row[i]);
    max = fmaxf(max, v);
    if (top_n == 0 || (count == top_n && !(v > value_at(top_n - 1)))) continue;
    int p = count < top_n ? count++ : top_n - 1;
    for (; p > 0 && v > value_at(p - 1); --p) {
      value_at(p) = value_at(p - 1);
      id_at(p) = id_at(p - 1);
    }
    value_at(p) = v;
    id_at(p) = i;
  }
  max = BlockReduce(max, value_s, kWarps, MaxOp{});
  float lse = max;
  if (isfinite(max)) {
    float sum = 0.f;
    for (int32_t i = t; i < width; i += kThreads) sum += expf(Finite(row[i]) - max);
    lse = max + logf(BlockReduce(sum, value_s, kWarps, SumOp{}));
  }
  if (t == 0) {
    const int32_t c = chosen[blockIdx.x];
    row_out[0] = {c, c >= 0 && c < width ? Logprob(Finite(row[c]), lse) : -INFINITY};
  }

  int head = 0;
  for (int k = 0; k < top_n; ++k) {
    const Ranked mine =
        head < count ? Ranked{value_at(head), id_at(head)} : Ranked{-INFINITY, INT32_MAX};
    const Ranked best = BlockBest(mine, value_s, id_s, kWarps);
    // top_n <= width: a real token always wins (the sentinel never does).
    if (best.id % kThreads == t) ++head;
    if (t == 0) row_out[1 + k] = {best.id, Logprob(best.value, lse)};
  }
}

}  // namespace

absl::Status LaunchRowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                               int32_t top_n, TokenLogprob* out, cudaStream_t stream) {
  if (rows < 0 || width <= 0 || top_n < 0 || top_n > kMaxTopLogprobs || top_n > width) {
    return absl::InvalidArgumentError(absl::StrCat("RowLogprobs: bad shape ", rows, "x", width,
                                                   " with top ", top_n, " (at most ",
                                                   kMaxTopLogprobs, ")"));
  }
  if (rows == 0) return absl::OkStatus();
  const size_t shared = static_cast<size_t>(top_n) * kThreads * (sizeof(float) + sizeof(int32_t));
  RowLogprobsKernel<<<rows, kThreads, shared, stream>>>(x, width, chosen, top_n, out);
  return LaunchStatus("RowLogprobsKernel");
}

}  // namespace cohost::kernels::cuda
