// JsonConstraint's mask cache: hot states stay while cold ones come and go,
// and engines on one tokenizer share one constraint (EngineConfig::
// json_constraint), its cached masks with it.
#include "runtime/engine/json_constraint.h"

#include <algorithm>
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
    constraint.Mask(schema, JsonGrammar(*schema), JsonPhase::kDocument, {}, absl::MakeSpan(logits));
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

// A document after a think block (JsonPhase): before it, the document's
// start or the opening tag; inside it, anything but an end (or a stop id);
// the closing tag starts the document. Without the tags as tokens, the
// document starts at once.
TEST_F(JsonConstraintTest, ADocumentMayFollowAThinkBlock) {
  const std::unique_ptr<Tokenizer> thinking =
      Tokenizer::Create(testing::MakeThinkingTokenizerSpec()).value();
  const JsonConstraint constraint(*thinking);
  ASSERT_TRUE(constraint.Thinks());
  EXPECT_FALSE(JsonConstraint(*tokenizer_).Thinks()) << "no think tags";
  const std::shared_ptr<const JsonSchema> schema = OneKey(0);
  const int32_t eos = thinking->eos_id();
  const std::vector<int32_t> stop_ids = {'x'};
  const auto allowed = [&](JsonPhase phase, const JsonGrammar& document) {
    std::vector<float> logits(thinking->vocab_size(), 0.f);
    constraint.Mask(schema, document, phase, stop_ids, absl::MakeSpan(logits));
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < thinking->vocab_size(); ++id) {
      if (logits[id] == 0.f) ids.push_back(id);
    }
    return ids;
  };
  const auto has = [](const std::vector<int32_t>& ids, int32_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  JsonGrammar document(*schema);
  const std::vector<int32_t> start = allowed(JsonPhase::kDocument, document);
  std::vector<int32_t> may = allowed(JsonPhase::kMayThink, document);
  EXPECT_TRUE(has(may, testing::kThinkOpen));
  may.erase(std::find(may.begin(), may.end(), testing::kThinkOpen));
  EXPECT_EQ(may, start) << "the document's start, and the opening tag";
  EXPECT_FALSE(has(start, testing::kThinkOpen));

  const std::vector<int32_t> inside = allowed(JsonPhase::kThinking, document);
  EXPECT_EQ(inside.size(), static_cast<size_t>(thinking->vocab_size() - 2))
      << "all but the end and the stop id";
  EXPECT_FALSE(has(inside, eos));
  EXPECT_FALSE(has(inside, 'x'));
  EXPECT_TRUE(has(inside, testing::kThinkClose));
  // The closing tag as a stop id stays allowed inside the block (the
  // request then ends with it); elsewhere a stop id waits for a whole document.
  std::vector<float> row(thinking->vocab_size(), 0.f);
  const std::vector<int32_t> close_stops = {testing::kThinkClose};
  constraint.Mask(schema, document, JsonPhase::kThinking, close_stops, absl::MakeSpan(row));
  EXPECT_EQ(row[testing::kThinkClose], 0.f);
  std::fill(row.begin(), row.end(), 0.f);
  constraint.Mask(schema, document, JsonPhase::kDocument, close_stops, absl::MakeSpan(row));
  EXPECT_LT(row[testing::kThinkClose], 0.f);
  // A row narrower than the vocabulary (a model with fewer rows than its
  // tokenizer's ids) is masked within its width.
  std::vector<uint64_t> narrow;
  constraint.AppendMask(schema, document, JsonPhase::kThinking, {}, 200, &narrow);
  ASSERT_EQ(narrow.size(), 4u);
  EXPECT_EQ(narrow[3] >> (200 % 64), 0u) << "no bit past the row's width";

  // The phases a token leads to.
  JsonPhase phase = JsonPhase::kMayThink;
  constraint.Advance(*schema, testing::kThinkOpen, &phase, &document);
  EXPECT_EQ(phase, JsonPhase::kThinking);
  for (const int32_t id : {int32_t{'{'}, testing::kThinkOpen, eos}) {
    constraint.Advance(*schema, id, &phase, &document);
    EXPECT_EQ(phase, JsonPhase::kThinking) << id;
  }
  EXPECT_TRUE(document == JsonGrammar(*schema)) << "the block's text is no document";
  constraint.Advance(*schema, testing::kThinkClose, &phase, &document);
  EXPECT_EQ(phase, JsonPhase::kDocument);
  EXPECT_TRUE(document == JsonGrammar(*schema));
  constraint.Advance(*schema, '{', &phase, &document);
  EXPECT_FALSE(document == JsonGrammar(*schema)) << "the document started";
  // Not opening the block starts the document at once.
  JsonGrammar direct(*schema);
  phase = JsonPhase::kMayThink;
  constraint.Advance(*schema, '{', &phase, &direct);
  EXPECT_EQ(phase, JsonPhase::kDocument);
  EXPECT_TRUE(direct == document);

  // A vocabulary without the tags: every phase is the document's.
  const JsonConstraint plain(*tokenizer_);
  std::vector<float> logits(tokenizer_->vocab_size(), 0.f);
  plain.Mask(schema, JsonGrammar(*schema), JsonPhase::kThinking, {}, absl::MakeSpan(logits));
  EXPECT_LT(logits['"'], 0.f);
  EXPECT_LT(logits[eos], 0.f);
  phase = JsonPhase::kThinking;
  JsonGrammar plain_document(*schema);
  plain.Advance(*schema, '{', &phase, &plain_document);
  EXPECT_EQ(phase, JsonPhase::kDocument);
  EXPECT_FALSE(plain_document == JsonGrammar(*schema));
}

// Through the engine: a request whose prompt opened the block is never let
// end inside it, though its end of generation is the likeliest token; its
// document follows the closing tag.
TEST_F(JsonConstraintTest, TheEngineHoldsTheDocumentToAfterTheBlock) {
  const std::unique_ptr<Tokenizer> thinking =
      Tokenizer::Create(testing::MakeThinkingTokenizerSpec()).value();
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend(1);
  std::unique_ptr<Model> model = Model::Create(testing::MakeTinyModelFile(), backend.get()).value();
  EngineConfig config;
  config.num_kv_blocks = 64;
  std::unique_ptr<Engine> engine = Engine::Create(model.get(), thinking.get(), config).value();
  for (const JsonPhase phase : {JsonPhase::kThinking, JsonPhase::kDocument}) {
    GenerateRequest request;
    request.prompt_ids = {'h', 'i', testing::kThinkOpen};
    request.sampling.temperature = 0;
    request.sampling.max_tokens = 8;
    request.sampling.response_format = ResponseFormat::kJsonObject;
    request.sampling.json_phase = phase;
    // The end first, then the closing tag, above anything the model says.
    request.sampling.logit_bias = {{thinking->eos_id(), 100.f}, {testing::kThinkClose, 90.f}};
    auto sink = std::make_shared<cohost::testing::CollectingSink>();
    ASSERT_TRUE(engine->Submit(request, sink).ok());
    testing::RunToIdle(*engine);
    ASSERT_TRUE(sink->finished());
    const std::vector<int32_t> ids = sink->ids();
    ASSERT_FALSE(ids.empty());
    size_t first = 0;
    if (phase == JsonPhase::kThinking) {
      EXPECT_EQ(ids[0], testing::kThinkClose) << "the end is masked inside the block";
      first = 1;
    }
    // Then the document (at once where no block comes first).
    JsonGrammar document;
    std::string text;
    for (size_t i = first; i < ids.size(); ++i) text += thinking->TokenBytes(ids[i]);
    EXPECT_TRUE(document.FeedAll(text)) << "[" << text << "]";
    EXPECT_TRUE(sink->tokens() == 8 || document.Complete())
        << "no end before the document is whole: [" << text << "]";
  }
}

}  // namespace
}  // namespace cohost::runtime
