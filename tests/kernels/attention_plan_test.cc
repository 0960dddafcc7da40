// CUDA paged attention's split-K plan, on the host: batch 1 fills the
// device, full batches and batches without hints run one split, and the
// bounds (splits, grid, workspace) hold.
#include "kernels/cuda/attention_plan.h"

#include "gtest/gtest.h"

namespace cohost::kernels::cuda {
namespace {

constexpr int32_t kH200Sms = 132;

BatchLayout Decode(int32_t num_seqs, int32_t context) {
  BatchLayout b;
  b.num_seqs = num_seqs;
  b.num_tokens = num_seqs;
  b.max_query_len = 1;
  b.max_context_len = context;
  return b;
}

PagedKv Kv(int32_t num_kv_heads, int32_t head_dim) {
  PagedKv kv;
  kv.num_kv_heads = num_kv_heads;
  kv.head_dim = head_dim;
  kv.block_size = 16;
  kv.dtype = DType::kBF16;
  return kv;
}

// Llama-3-8B's attention: 32 query heads over 8 kv heads of 128.
TEST(AttentionPlanTest, BatchOneDecodeOfALongContextFillsTheDevice) {
  const AttentionPlan plan = PlanPagedAttention(Decode(1, 4096), Kv(8, 128), 32, kH200Sms);
  // 8 CTAs without splits; 4096 keys allow 32 splits of 128.
  EXPECT_EQ(plan.num_splits, 32);
  EXPECT_GE(8 * plan.num_splits, kH200Sms);
  EXPECT_EQ(plan.workspace_bytes, size_t{32} * 1 * 32 * (128 * 4 + 8));
}

TEST(AttentionPlanTest, SplitsStopAtTheCtaTargetAndTheContext) {
  // Longer contexts: the device's 4 CTAs per SM bound the splits (528 / 8).
  EXPECT_EQ(PlanPagedAttention(Decode(1, 32768), Kv(8, 128), 32, kH200Sms).num_splits, 64);
  EXPECT_EQ(PlanPagedAttention(Decode(4, 32768), Kv(8, 128), 32, kH200Sms).num_splits, 17);
  // A short context: at least 128 keys a split.
  EXPECT_EQ(PlanPagedAttention(Decode(1, 300), Kv(8, 128), 32, kH200Sms).num_splits, 3);
  EXPECT_EQ(PlanPagedAttention(Decode(1, 128), Kv(8, 128), 32, kH200Sms).num_splits, 1);
}

TEST(AttentionPlanTest, BatchesThatFillTheDeviceRunOneSplit) {
  // 66 sequences x 8 kv heads = 528 CTAs, the target.
  const AttentionPlan full = PlanPagedAttention(Decode(66, 8192), Kv(8, 128), 32, kH200Sms);
  EXPECT_EQ(full.num_splits, 1);
  EXPECT_EQ(full.workspace_bytes, 0u);
  // A long prefill chunk: 2048 tokens x 4 heads / 16 rows = 512 tiles per kv head.
  BatchLayout prefill = Decode(1, 2048);
  prefill.num_tokens = 2048;
  prefill.max_query_len = 2048;
  EXPECT_EQ(PlanPagedAttention(prefill, Kv(8, 128), 32, kH200Sms).num_splits, 1);
}

TEST(AttentionPlanTest, TensorCoreCallsRunOneSplit) {
  // A 16-token chunk of 4-head groups is 64 rows: the tensor cores' kernel,
  // which does not split, even over a long prefix.
  BatchLayout chunk = Decode(1, 4096);
  chunk.num_tokens = 16;
  chunk.max_query_len = 16;
  AttentionPlan plan = PlanPagedAttention(chunk, Kv(8, 128), 32, kH200Sms);
  EXPECT_TRUE(plan.tensor_cores);
  EXPECT_EQ(plan.num_splits, 1);
  EXPECT_EQ(plan.workspace_bytes, 0u);
  // Without hints too (num_tokens bounds the run), and without an SM count.
  chunk.max_query_len = 0;
  chunk.max_context_len = 0;
  EXPECT_TRUE(PlanPagedAttention(chunk, Kv(8, 128), 32, 0).tensor_cores);
  // 15 tokens (60 rows) stay on CUDA cores, and split.
  chunk = Decode(1, 4096);
  chunk.num_tokens = 15;
  chunk.max_query_len = 15;
  plan = PlanPagedAttention(chunk, Kv(8, 128), 32, kH200Sms);
  EXPECT_FALSE(plan.tensor_cores);
  EXPECT_GT(plan.num_splits, 1);
  // Decode stays on CUDA cores.
  EXPECT_FALSE(PlanPagedAttention(Decode(1, 4096), Kv(8, 128), 32, kH200Sms).tensor_cores);
}

TEST(AttentionPlanTest, WithoutHintsOrSmCountOneSplit) {
  BatchLayout no_hints = Decode(1, 4096);
  no_hints.max_context_len = 0;
  EXPECT_EQ(PlanPagedAttention(no_hints, Kv(8, 128), 32, kH200Sms).num_splits, 1);
  EXPECT_EQ(PlanPagedAttention(Decode(1, 4096), Kv(8, 128), 32, 0).num_splits, 1);
  EXPECT_EQ(PlanPagedAttention(Decode(0, 4096), Kv(8, 128), 32, kH200Sms).num_splits, 1);
  EXPECT_EQ(PlanPagedAttention(Decode(1, 4096), Kv(8, 128), 30, kH200Sms).num_splits, 1)
      << "heads not a multiple of kv heads";
}

TEST(AttentionPlanTest, TheWorkspaceStaysBounded) {
  // Many tokens of one sequence on a device of very many SMs: the workspace,
  // not the CTA target, bounds the splits.
  BatchLayout b = Decode(1, 1 << 20);
  b.num_tokens = 4096;  // padding tokens count towards the workspace
  const AttentionPlan plan = PlanPagedAttention(b, Kv(1, 128), 1, 100000);
  const size_t per_split = size_t{4096} * 1 * (128 * 4 + 8);
  EXPECT_LE(plan.workspace_bytes, size_t{kAttnMaxWorkspaceBytes});
  EXPECT_EQ(plan.num_splits, kAttnMaxWorkspaceBytes / per_split);
  EXPECT_EQ(plan.workspace_bytes, plan.num_splits * per_split);
}

TEST(AttentionPlanTest, TheGridStaysWithinItsZLimit) {
  // 2000 one-head sequences on a huge device: splits x seqs + 1 <= 65535.
  BatchLayout b = Decode(2000, 1 << 20);
  const AttentionPlan plan = PlanPagedAttention(b, Kv(1, 64), 1, 1000000);
  EXPECT_EQ(plan.num_splits, 32);
  EXPECT_LE(int64_t{plan.num_splits} * 2000 + 1, 65535);
}

}  // namespace
}  // namespace cohost::kernels::cuda
