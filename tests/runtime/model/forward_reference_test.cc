// The default model's forward pass against an independent reference: Hugging
// Face transformers running the same GGUF in float32
// (scripts/make_forward_reference.py wrote tests/data/forward_reference_smollm2.json).

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/loaded_model.h"
#include "runtime/model/kv_cache.h"
#include "tests/support/default_model.h"
#include "tests/support/generator.h"
#include "tests/support/last_logits.h"

namespace cohost::runtime {
namespace {

// fp32 on both sides with different summation orders: measured max error is
// about 3e-5 on logits of magnitude up to ~30; 1e-3 leaves headroom for other
// BLAS builds while still catching any real numerical bug.
constexpr float kLogitTolerance = 1e-3f;

class ForwardReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::DefaultModel*> shared = testing::SharedDefaultModel();
    ASSERT_TRUE(shared.ok()) << shared.status();
    backend_ = (*shared)->backend.get();
    model_ = &(*shared)->model;
    std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/forward_reference_smollm2.json");
    ASSERT_TRUE(f.good());
    ref_ = new nlohmann::json(nlohmann::json::parse(f));
  }
  static void TearDownTestSuite() { delete ref_; }

  static std::vector<float> LastLogits(const std::vector<int32_t>& ids, int32_t chunk) {
    return cohost::testing::LastLogits(*model_->model, backend_, ids, chunk);
  }

  static kernels::Backend* backend_;
  static LoadedModel* model_;
  static nlohmann::json* ref_;
};

kernels::Backend* ForwardReferenceTest::backend_ = nullptr;
LoadedModel* ForwardReferenceTest::model_ = nullptr;
nlohmann::json* ForwardReferenceTest::ref_ = nullptr;

TEST_F(ForwardReferenceTest, LastPositionLogitsMatchTransformers) {
  ASSERT_EQ((*ref_)["cases"].size(), 3u);
  for (const auto& c : (*ref_)["cases"]) {
    SCOPED_TRACE(c["prompt"].get<std::string>());
    const std::vector<int32_t> ids = c["prompt_ids"];
    // Whole prompt in one step, and in chunks of 5 through the paged prefix.
    for (int32_t chunk : {static_cast<int32_t>(ids.size()), 5}) {
      std::vector<float> logits = LastLogits(ids, chunk);
      ASSERT_EQ(logits.size(), static_cast<size_t>(model_->config().vocab_size));
      const float max_err = cohost::testing::MaxErrorAt(logits, c["logit_ids"], c["logits"]);
      EXPECT_LT(max_err, kLogitTolerance) << "chunk " << chunk;
      std::printf("  max |logit - reference| = %.2e (chunk %d)\n", max_err, chunk);
    }
  }
}

TEST_F(ForwardReferenceTest, GreedyContinuationMatchesTokenForToken) {
  Generator generator(model_->model.get(), model_->tokenizer.get());
  for (const auto& c : (*ref_)["cases"]) {
    SCOPED_TRACE(c["prompt"].get<std::string>());
    const std::vector<int32_t> ids = c["prompt_ids"];
    const std::vector<int32_t> want = c["greedy_ids"];
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = static_cast<int32_t>(want.size());
    p.ignore_eos = true;
    absl::StatusOr<GenerationResult> r = generator.Generate(ids, p);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->generated_ids, want);
    EXPECT_EQ(r->finish_reason, FinishReason::kLength);
  }
}

}  // namespace
}  // namespace cohost::runtime
