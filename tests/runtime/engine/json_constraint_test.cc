// JsonConstraint's mask cache: hot states stay while cold ones come and go,
// and engines on one tokenizer share one constraint (EngineConfig::
// json_constraint), its cached masks with it.
#include "runtime/engine/json_constraint.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/engine.h"
#include "runtime/model/model.h"
#include "runtime/sampling/json_schema.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/support/collecting_sink.h"
#include "tests/support/run_to_idle.h"
#include "tests/support/tiny_model.h"

namespace cohost::runtime {
namespace {

// An object of one required string property, named for `i`: a schema whose
// first state is its own.
std::shared_ptr<const JsonSchema> OneKey(int i) {
  const std::string key = absl::StrCat("k", i);
  nlohmann::json schema = {
      {"type", "object"}, {"properties", {{key, {{"type", "string"}}}}}, {"required", {key}}};
  return std::make_shared<const JsonSchema>(JsonSchema::Compile(schema).value());
}

class JsonConstraintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = Tokenizer::Create(testing::MakeByteTokenizerSpec()).value();
  }
  // Masks one row at the start of a document of `schema`.
  void MaskAt(const JsonConstraint& constraint, const std::shared_ptr<const JsonSchema>& schema) {
    std::vector<float> logits(tokenizer_->vocab_size(), 0.f);
    constraint.Mask(schema, JsonGrammar(*schema), {}, absl::MakeSpan(logits));
    // A document of OneKey starts with '{' (or spaces), nothing else.
    EXPECT_EQ(logits['{'], 0.f);
    EXPECT_LT(logits['"'], 0.f);
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(JsonConstraintTest, AHotStateKeepsItsMaskWhileColdOnesComeAndGo) {
  const JsonConstraint constraint(*tokenizer_);
  const std::shared_ptr<const JsonSchema> hot = OneKey(0);
  MaskAt(constraint, hot);
  EXPECT_EQ(constraint.walks(), 1);
  MaskAt(constraint, hot);
  EXPECT_EQ(constraint.walks(), 1);
  // Far more cold states than the cache holds, the hot one used between.
  std::vector<std::shared_ptr<const JsonSchema>> cold;
  for (int i = 1; i <= 600; ++i) {
    cold.push_back(OneKey(i));
    MaskAt(constraint, cold.back());
    MaskAt(constraint, hot);
  }
  EXPECT_EQ(constraint.walks(), 601);
  // The first cold ones were let go: walked again.
  MaskAt(constraint, cold.front());
  EXPECT_EQ(constraint.walks(), 602);
}

TEST_F(JsonConstraintTest, EnginesOnOneTokenizerShareItsCachedMasks) {
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend(1);
  std::unique_ptr<Model> model = Model::Create(testing::MakeTinyModelFile(), backend.get()).value();
  auto constraint = std::make_shared<const JsonConstraint>(*tokenizer_);
  EngineConfig config;
  config.num_kv_blocks = 64;
  config.json_constraint = constraint;
  // Greedy, so that both engines' documents pass through the same states.
  auto serve_one = [&] {
    std::unique_ptr<Engine> engine = Engine::Create(model.get(), tokenizer_.get(), config).value();
    GenerateRequest request;
    request.prompt_ids = {'h', 'i'};
    request.sampling.temperature = 0;
    request.sampling.max_tokens = 12;
    request.sampling.response_format = ResponseFormat::kJsonObject;
    auto sink = std::make_shared<cohost::testing::CollectingSink>();
    ASSERT_TRUE(engine->Submit(request, sink).ok());
    testing::RunToIdle(*engine);
    ASSERT_TRUE(sink->finished());
    EXPECT_EQ(sink->tokens(), 12);
  };
  serve_one();
  const int64_t walked = constraint->walks();
  EXPECT_GT(walked, 0);
  serve_one();
  EXPECT_EQ(constraint->walks(), walked);

  // One built from another tokenizer is refused.
  const std::unique_ptr<Tokenizer> other =
      Tokenizer::Create(testing::MakeByteTokenizerSpec()).value();
  config.json_constraint = std::make_shared<const JsonConstraint>(*other);
  absl::StatusOr<std::unique_ptr<Engine>> refused =
      Engine::Create(model.get(), tokenizer_.get(), config);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::runtime
