// The mixture of experts against an independent reference: transformers'
// Qwen3MoeForCausalLM in float32 on the Qwen3-MoE checkpoint
// scripts/make_hf_moe_variant.py writes (scripts/make_moe_reference.py wrote
// tests/data/forward_reference_qwen3moe.json), run here through cohost's
// exact path (fp32 weights, activations and KV cache) from the same files:
// the Hugging Face names and config of a model with experts, the router,
// softmax, top-k, the picked probabilities' normalization, each expert's
// product and their weighted sum. The reference records each layer's
// smallest router gap on each prompt: fp32 roundoff (~1e-6) cannot flip a
// pick across gaps of 1e-3, so the logits must agree to fp32's order.
// (The quantized path against llama.cpp: llamacpp_reference_test's
// Qwen3MoE file.)

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/loaded_model.h"
#include "tests/support/last_logits.h"

namespace cohost::runtime {
namespace {

// fp32 on both sides, sums in different orders: the dense model agrees to
// ~3e-5 (forward_reference_test); the experts add a weighted sum of two
// FFNs a layer.
constexpr float kLogitTolerance = 1e-3f;
// Router gaps the reference must keep for the check to be meaningful, and
// greedy margins above which a step must pick the reference's token.
constexpr float kMinRouterGap = 1e-3f;
constexpr float kClearMargin = 0.01f;

class MoeReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/forward_reference_qwen3moe.json");
    ASSERT_TRUE(f.good());
    ref_ = new nlohmann::json(nlohmann::json::parse(f));
    backend_ = kernels::MakeCpuBackend(0, kernels::DType::kF32).release();
    const std::string path =
        std::string(COHOST_SOURCE_DIR) + "/models/" + (*ref_)["checkpoint"].get<std::string>();
    absl::StatusOr<LoadedModel> m = LoadModel(path, backend_, nullptr, {.keep_quantized = false});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LoadedModel(*std::move(m));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete backend_;
    delete ref_;
  }
  void SetUp() override { ASSERT_NE(model_, nullptr); }

  static nlohmann::json* ref_;
  static kernels::Backend* backend_;
  static LoadedModel* model_;
};

nlohmann::json* MoeReferenceTest::ref_ = nullptr;
kernels::Backend* MoeReferenceTest::backend_ = nullptr;
LoadedModel* MoeReferenceTest::model_ = nullptr;

TEST_F(MoeReferenceTest, ReadsTheCheckpointsExperts) {
  const ModelConfig& c = model_->model->config();
  EXPECT_EQ(c.architecture, "qwen3moe");
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_used, 2);
  EXPECT_EQ(c.expert_intermediate_size, 1536);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(model_->model->weights_bytes(),
            Model::PredictWeightsBytes(c, kernels::DType::kF32, false));
}

TEST_F(MoeReferenceTest, LastPositionLogitsMatchTransformers) {
  for (const auto& c : (*ref_)["cases"]) {
    const std::vector<int32_t> ids = c["prompt_ids"];
    SCOPED_TRACE(c["prompt_ids"].dump());
    const std::vector<float> gaps = c["router_gaps"];
    ASSERT_GT(*std::min_element(gaps.begin(), gaps.end()), kMinRouterGap)
        << "a routing near-tie: choose another prompt";
    // The whole prompt in one step, and in chunks of 5 through the paged prefix.
    for (const int32_t chunk : {static_cast<int32_t>(ids.size()), 5}) {
      const std::vector<float> logits =
          cohost::testing::LastLogits(*model_->model, backend_, ids, chunk);
      ASSERT_EQ(logits.size(), static_cast<size_t>(model_->model->config().vocab_size));
      const float max_err = cohost::testing::MaxErrorAt(logits, c["logit_ids"], c["logits"]);
      EXPECT_LT(max_err, kLogitTolerance) << "chunk " << chunk;
      std::printf("  max |logit - transformers| = %.2e (chunk %d)\n", max_err, chunk);
    }
  }
}

TEST_F(MoeReferenceTest, TeacherForcedStepsPickTransformersToken) {
  int checked = 0;
  for (const auto& c : (*ref_)["cases"]) {
    std::vector<int32_t> ids = c["prompt_ids"];
    const std::vector<int32_t> want = c["greedy_ids"];
    const std::vector<float> margins = c["greedy_margins"];
    for (size_t step = 0; step < want.size(); ++step) {
      if (margins[step] > kClearMargin) {
        const std::vector<float> logits = cohost::testing::LastLogits(
            *model_->model, backend_, ids, static_cast<int32_t>(ids.size()));
        const auto top = std::max_element(logits.begin(), logits.end()) - logits.begin();
        EXPECT_EQ(top, want[step]) << "step " << step << ", margin " << margins[step];
        ++checked;
      }
      ids.push_back(want[step]);
    }
  }
  EXPECT_GT(checked, 24) << "the check must not be vacuous";
}

}  // namespace
}  // namespace cohost::runtime
