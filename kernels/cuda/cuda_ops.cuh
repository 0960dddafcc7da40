// Host-side launchers of the CUDA kernels, one per op of kernels::Backend. Each
// validates what it can, enqueues on `stream`, checks the launch, and returns
// the first error; CudaBackend records it for Synchronize to report.
// All tensors are bf16 device memory unless the type says otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "attention_plan.h"
#include "cohost/kernels/paged_kv.h"
#include "cohost/kernels/rope.h"
#include "cohost/kernels/sample_spec.h"
#include "cuda_common.cuh"

namespace cohost::kernels::cuda {

// out[r, :] = x[rows[r], :]; also the embedding lookup (x = table, rows = ids).
absl::Status LaunchGatherRows(const bf16* x /*[n, width]*/, const int32_t* rows /*[num_rows]*/,
                              int32_t num_rows, int32_t width, bf16* out /*[num_rows, width]*/,
                              cudaStream_t stream);

// Backend::MaskRows: a thread per logit of the masked rows.
absl::Status LaunchMaskRows(float* x /*[rows, width]*/, int32_t rows, int32_t width,
                            const int32_t* mask_of /*[rows]*/, const uint64_t* masks,
                            cudaStream_t stream);

// Backend::ApplyPenalties and RestoreLogits: a block per row, a thread per
// term.
absl::Status LaunchApplyPenalties(float* x /*[rows, width]*/, int32_t rows, int32_t width,
                                  const int32_t* starts, const PenaltyTerm* terms,
                                  float* saved /*or null*/, cudaStream_t stream);
absl::Status LaunchRestoreLogits(float* x /*[rows, width]*/, int32_t rows, int32_t width,
                                 const int32_t* starts, const PenaltyTerm* terms,
                                 const float* saved, cudaStream_t stream);

// Backend::SampleRows: each row's token drawn as its SampleSpec says.
absl::Status LaunchSampleRows(const float* x /*[rows, width]*/, int32_t rows, int32_t width,
                              const SampleSpec* specs /*[rows]*/, int32_t* out /*[rows]*/,
                              cudaStream_t stream);

// Backend::RowLogprobs: a block per row; top_n <= min(width, kMaxTopLogprobs).
absl::Status LaunchRowLogprobs(const float* x /*[rows, width]*/, int32_t rows, int32_t width,
                               const int32_t* chosen /*[rows]*/, int32_t top_n,
                               TokenLogprob* out /*[rows, 1 + top_n]*/, cudaStream_t stream);

// residual (if not null) += x, then out = v / rms(v) * weight with v the new
// residual (rounded to bf16, as the next layer will read it) or x.
absl::Status LaunchRmsNorm(const bf16* x /*[n, hidden]*/, bf16* residual /*[n, hidden] or null*/,
                           const bf16* weight /*[hidden]*/, int32_t n, int32_t hidden, float eps,
                           bf16* out /*[n, hidden]*/, cudaStream_t stream);
// Backend::HeadRmsNorm: RmsNorm's arithmetic, in place, on each head of each row.
absl::Status LaunchHeadRmsNorm(bf16* x /*[rows, row_stride]*/, int32_t rows, int64_t row_stride,
                               int32_t heads, int32_t head_dim, const bf16* weight /*[head_dim]*/,
                               float eps, cudaStream_t stream);

// Backend::MoeCombine.
absl::Status LaunchMoeCombine(const bf16* y, const int32_t* rows /*[n, k]*/,
                              const float* weights /*[n, k]*/, int32_t n, int32_t k, int32_t width,
                              bf16* out /*[n, width]*/, cudaStream_t stream);

// x += y.
absl::Status LaunchAdd(bf16* x /*[n]*/, const bf16* y /*[n]*/, int64_t n, cudaStream_t stream);

// c[i, :] += bias.
absl::Status LaunchAddBias(bf16* c /*[m, n]*/, const bf16* bias /*[n]*/, int32_t m, int32_t n,
                           cudaStream_t stream);

// out = silu(gate) * up with gate_up rows packed as [gate | up].
absl::Status LaunchSiluMul(const bf16* gate_up /*[n, 2 * inter]*/, int32_t n, int32_t inter,
                           bf16* out /*[n, inter]*/, cudaStream_t stream);

// RoPE of q and k in place (the first rope.rotary_dim dims of each head, in
// rope.pairs), then k and v rows into the pages at slot_mapping (-1: not
// written).
// q, k, v: bf16 rows as QkvRows says.
absl::Status LaunchRopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                               const RopeSpec& rope, const PagedKv& kv, cudaStream_t stream);

// Causal paged attention over a varlen batch (decode and prefill chunks).
// `workspace`: plan.workspace_bytes of device memory, 16-byte aligned (none
// for one split).
absl::Status LaunchPagedAttention(const bf16* q, int64_t q_stride /*QkvRows*/,
                                  const BatchLayout& batch, const PagedKv& kv, int32_t num_heads,
                                  float scale, bf16* out /*[num_tokens, num_heads, head_dim]*/,
                                  const AttentionPlan& plan, void* workspace, cudaStream_t stream);

}  // namespace cohost::kernels::cuda
