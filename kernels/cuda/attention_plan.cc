#include "attention_plan.h"

#include <algorithm>

namespace cohost::kernels::cuda {

AttentionPlan PlanPagedAttention(const BatchLayout& batch, const PagedKv& kv, int32_t num_heads,
                                 int32_t num_sms) {
  AttentionPlan plan;
  if (batch.num_tokens <= 0 || batch.num_seqs <= 0 || kv.num_kv_heads <= 0 || num_heads <= 0 ||
      num_heads % kv.num_kv_heads != 0 || kv.head_dim <= 0) {
    return plan;  // the launch refuses a bad shape, or has nothing to do
  }
  const int64_t group = num_heads / kv.num_kv_heads;
  const int64_t max_q = MaxQueryLen(batch);
  if (max_q * group >= kAttnMmaRows) {
    plan.tensor_cores = true;
    return plan;
  }
  if (batch.max_context_len <= 0 || num_sms <= 0) return plan;
  // The dense grid's CTAs (PagedAttentionKernel): query tiles x kv heads x sequences.
  const int64_t tiles = (max_q * group + kAttnRowsPerCta - 1) / kAttnRowsPerCta;
  const int64_t ctas = tiles * kv.num_kv_heads * batch.num_seqs;
  const int64_t wanted = int64_t{kAttnCtasPerSm} * num_sms;
  if (ctas >= wanted) return plan;
  int64_t splits = std::min<int64_t>(
      {(wanted + ctas - 1) / ctas,
       (batch.max_context_len + kAttnMinSplitKeys - 1) / kAttnMinSplitKeys, kAttnMaxSplits,
       // The grid's z: num_seqs * num_splits + 1 slices, at most 65535.
       65534 / batch.num_seqs});
  const int64_t per_split =
      int64_t{batch.num_tokens} * num_heads *
      (int64_t{kv.head_dim} * int64_t{sizeof(float)} + 2 * int64_t{sizeof(float)});
  splits = std::min<int64_t>(splits, kAttnMaxWorkspaceBytes / per_split);
  if (splits < 2) return plan;
  plan.num_splits = static_cast<int32_t>(splits);
  plan.workspace_bytes = static_cast<size_t>(splits * per_split);
  return plan;
}

}  // namespace cohost::kernels::cuda
