// How CUDA paged attention cuts one call into CTAs: host-side planning, no
// CUDA types, so that it is tested where no GPU is present.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cohost/kernels/paged_kv.h"

namespace cohost::kernels::cuda {

// (token, query head) rows per CTA: a query tile of one kv head's GQA group.
inline constexpr int kAttnRowsPerCta = 16;
// A call whose longest query tile has this many rows runs on the tensor cores
// (attention_mma.cu), in CTAs of this many rows, without splits.
inline constexpr int kAttnMmaRows = 64;

// Which kernel runs a call: the tensor cores' (a query tile of kAttnMmaRows
// rows or more), or the CUDA cores', with num_splits ranges of each
// sequence's context (split-K, flash-decoding) when the batch alone would not
// fill the device, and the fp32 workspace their partial results take.
struct AttentionPlan {
  bool tensor_cores = false;
  int32_t num_splits = 1;
  size_t workspace_bytes = 0;
};

// Splits aim at kCtasPerSm CTAs per SM, take at least kMinSplitKeys keys each,
// number at most kMaxSplits, and need at most kMaxWorkspaceBytes.
inline constexpr int kAttnCtasPerSm = 4;
inline constexpr int kAttnMinSplitKeys = 128;
inline constexpr int kAttnMaxSplits = 64;
inline constexpr int64_t kAttnMaxWorkspaceBytes = int64_t{64} << 20;

// The longest new-token run of one sequence: max_query_len where given (it
// must bound every run; 0: unknown), and num_tokens always bounds it.
inline int32_t MaxQueryLen(const BatchLayout& batch) {
  return batch.max_query_len > 0 && batch.max_query_len < batch.num_tokens ? batch.max_query_len
                                                                           : batch.num_tokens;
}

// From the batch's planning hints (max_query_len, max_context_len; without
// them, one split) and the device's SM count (0: one split). Calls for the
// tensor cores get one split: the CUDA-core kernel alone splits.
AttentionPlan PlanPagedAttention(const BatchLayout& batch, const PagedKv& kv, int32_t num_heads,
                                 int32_t num_sms);

}  // namespace cohost::kernels::cuda
