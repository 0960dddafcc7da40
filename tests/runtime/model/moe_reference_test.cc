// The mixture of experts against an independent reference: transformers'
// Qwen3MoeForCausalLM and MixtralForCausalLM in float32 on the checkpoints
// scripts/make_hf_moe_variant.py writes (scripts/make_moe_reference.py wrote
// tests/data/forward_reference_{qwen3moe,mixtral}.json), run here through
// cohost's exact path (fp32 weights, activations and KV cache) from the same
// files: the Hugging Face names and configs of models with experts
// (Mixtral's block_sparse_moe.experts.E.w1/w3/w2 and its rotate-half q and
// k), the router, softmax, top-k, the picked probabilities' normalization,
// each expert's product and their weighted sum. The reference records each
// layer's smallest router gap on each prompt: fp32 roundoff (~1e-6) cannot
// flip a pick across gaps of 1e-3, so the logits must agree to fp32's order.
// (The quantized path against llama.cpp: llamacpp_reference_test's Qwen3MoE
// and Mixtral files.)

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
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

// One reference's checkpoint, loaded once for its tests.
struct Reference {
  std::unique_ptr<nlohmann::json> ref;
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<LoadedModel> model;
};

class MoeReferenceTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void TearDownTestSuite() { loaded_.clear(); }
  void SetUp() override {
    std::unique_ptr<Reference>& r = loaded_[GetParam()];
    if (r == nullptr) {
      std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/forward_reference_" +
                      GetParam() + ".json");
      ASSERT_TRUE(f.good()) << GetParam();
      auto loaded = std::make_unique<Reference>();
      loaded->ref = std::make_unique<nlohmann::json>(nlohmann::json::parse(f));
      loaded->backend = kernels::MakeCpuBackend(0, kernels::DType::kF32);
      const std::string path = std::string(COHOST_SOURCE_DIR) + "/models/" +
                               (*loaded->ref)["checkpoint"].get<std::string>();
      absl::StatusOr<LoadedModel> m =
          LoadModel(path, loaded->backend.get(), nullptr, {.keep_quantized = false});
      ASSERT_TRUE(m.ok()) << m.status();
      loaded->model = std::make_unique<LoadedModel>(*std::move(m));
      r = std::move(loaded);
    }
    ref_ = r->ref.get();
    backend_ = r->backend.get();
    model_ = r->model.get();
  }

  static std::map<std::string, std::unique_ptr<Reference>> loaded_;
  const nlohmann::json* ref_ = nullptr;
  kernels::Backend* backend_ = nullptr;
  LoadedModel* model_ = nullptr;
};

std::map<std::string, std::unique_ptr<Reference>> MoeReferenceTest::loaded_;

TEST_P(MoeReferenceTest, ReadsTheCheckpointsExperts) {
  const ModelConfig& c = model_->model->config();
  // A Mixtral is a Mistral with experts.
  EXPECT_EQ(c.architecture, GetParam() == std::string("mixtral") ? "mistral" : "qwen3moe");
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_used, 2);
  EXPECT_EQ(c.expert_intermediate_size, 1536);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(model_->model->weights_bytes(),
            Model::PredictWeightsBytes(c, kernels::DType::kF32, false));
}

TEST_P(MoeReferenceTest, LastPositionLogitsMatchTransformers) {
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

TEST_P(MoeReferenceTest, TeacherForcedStepsPickTransformersToken) {
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

INSTANTIATE_TEST_SUITE_P(Checkpoints, MoeReferenceTest, ::testing::Values("qwen3moe", "mixtral"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace cohost::runtime
