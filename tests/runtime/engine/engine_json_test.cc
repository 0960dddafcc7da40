// The Engine on the default model with a JSON response format: whatever the
// prompt and the draw, the text is a JSON object (or, cut off at max_tokens,
// the start of one), batched beside unconstrained requests.

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/engine.h"
#include "runtime/engine/json_constraint.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/json_schema.h"
#include "runtime/sampling/sampling_params.h"
#include "tests/support/default_model.h"
#include "tests/support/run_to_idle.h"

namespace cohost::runtime {
namespace {

class Sink : public TokenSink {
 public:
  bool OnDelta(const TokenDelta& d) override {
    text += d.text;
    return true;
  }
  void OnFinish(const FinishInfo& i) override {
    info = i;
    finished = true;
  }
  std::string text;
  FinishInfo info;
  bool finished = false;
};

// An order: an integer and a number within bounds, a pattern, a format and
// an enum of numbers and null.
JsonSchema OrderSchema() {
  return JsonSchema::Compile(nlohmann::json::parse(R"({"type": "object", "properties": {
      "age": {"type": "integer", "minimum": 1, "maximum": 30},
      "score": {"type": "number", "minimum": 0, "maximum": 1},
      "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{2}$"},
      "born": {"type": "string", "format": "date"},
      "size": {"enum": [1, 2, 3, null]}},
    "required": ["age", "score", "code", "born", "size"], "additionalProperties": false})"))
      .value();
}

class EngineJsonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::DefaultModel*> shared = testing::SharedDefaultModel();
    ASSERT_TRUE(shared.ok()) << shared.status();
    model_ = &(*shared)->model;
  }
  static std::unique_ptr<Engine> MakeEngine() {
    EngineConfig c;
    c.num_kv_blocks = 256;
    c.step_scheduler.max_num_seqs = 16;
    return Engine::Create(model_->model.get(), model_->tokenizer.get(), c).value();
  }
  static std::vector<int32_t> Chat(const std::string& user) {
    ChatOptions options;
    options.add_generation_prompt = true;
    return model_->tokenizer->EncodeChat({{"user", user}}, options).value();
  }
  static void RunToIdle(Engine& e) { testing::RunToIdle(e); }
  // Six answers to `prompt` held to `schema`, run to their end: the first
  // greedy, the rest at temperature 1 (seeds from `seed`).
  static std::vector<std::shared_ptr<Sink>> Draws(const std::shared_ptr<const JsonSchema>& schema,
                                                  const std::string& prompt, uint64_t seed) {
    std::unique_ptr<Engine> e = MakeEngine();
    std::vector<std::shared_ptr<Sink>> sinks;
    for (int draw = 0; draw < 6; ++draw) {
      GenerateRequest r;
      r.prompt_ids = Chat(prompt);
      r.sampling.temperature = draw == 0 ? 0.f : 1.f;
      r.sampling.seed = seed + draw;
      r.sampling.max_tokens = 120;
      r.sampling.response_format = ResponseFormat::kJsonSchema;
      r.sampling.json_schema = schema;
      sinks.push_back(std::make_shared<Sink>());
      EXPECT_TRUE(e->Submit(std::move(r), sinks.back()).ok());
    }
    RunToIdle(*e);
    return sinks;
  }
  static LoadedModel* model_;
};
LoadedModel* EngineJsonTest::model_ = nullptr;

TEST_F(EngineJsonTest, EveryDrawIsAJsonObjectBesideUnconstrainedRequests) {
  const std::vector<std::pair<std::string, std::vector<int32_t>>> prompts = {
      {"chat", Chat("Describe a cat as JSON with the keys name, age and colors.")},
      {"chat, no mention of JSON", Chat("Write a short poem about the sea.")},
      {"plain text", model_->tokenizer->Encode("Once upon a time, in a small village,").value()},
  };
  std::unique_ptr<Engine> e = MakeEngine();
  struct Run {
    std::string what;
    std::shared_ptr<Sink> sink;
    bool json;
  };
  std::vector<Run> runs;
  for (const auto& [what, ids] : prompts) {
    for (int draw = 0; draw < 4; ++draw) {
      for (const bool json : {true, false}) {
        if (!json && draw > 0) continue;
        GenerateRequest r;
        r.prompt_ids = ids;
        r.sampling.temperature = draw == 0 ? 0.f : 1.f;
        r.sampling.seed = 40 + draw;
        r.sampling.max_tokens = 160;
        if (json) r.sampling.response_format = ResponseFormat::kJsonObject;
        runs.push_back({what + (json ? ", JSON, draw " : ", text, draw ") + std::to_string(draw),
                        std::make_shared<Sink>(), json});
        ASSERT_TRUE(e->Submit(std::move(r), runs.back().sink).ok());
      }
    }
  }
  RunToIdle(*e);
  int whole = 0, json_runs = 0, text_that_is_json = 0;
  for (const Run& run : runs) {
    SCOPED_TRACE(run.what + ": " + run.sink->text);
    ASSERT_TRUE(run.sink->finished);
    if (!run.json) {
      text_that_is_json += nlohmann::json::accept(run.sink->text);
      continue;
    }
    ++json_runs;
    if (run.sink->info.reason == FinishReason::kStop) {
      ++whole;
      const nlohmann::json parsed = nlohmann::json::parse(run.sink->text, nullptr, false);
      EXPECT_TRUE(parsed.is_object());
    } else {
      EXPECT_EQ(run.sink->info.reason, FinishReason::kLength);
      EXPECT_TRUE(JsonGrammar().FeedAll(run.sink->text)) << "the start of a document";
    }
  }
  // The grammar, not the prompt, made them: no unconstrained answer is JSON,
  // and most constrained ones closed their object before max_tokens.
  EXPECT_EQ(text_that_is_json, 0);
  EXPECT_GE(whole, json_runs / 2);
  const EngineStats stats = e->Stats();
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks_total);
}

// A schema's documents: what every draw that ended by itself wrote has the
// required keys, no others, and each value of its type.
TEST_F(EngineJsonTest, EveryDrawFollowsTheSchema) {
  absl::StatusOr<JsonSchema> compiled = JsonSchema::Compile(nlohmann::json::parse(R"({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"},
                   "kind": {"enum": ["cat", "dog", "bird"]},
                   "toys": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
    "required": ["name", "age", "kind"]})"));
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  const auto schema = std::make_shared<const JsonSchema>(*std::move(compiled));
  int whole = 0;
  for (const auto& sink : Draws(schema, "Describe a pet as JSON.", 7)) {
    SCOPED_TRACE(sink->text);
    ASSERT_TRUE(sink->finished);
    JsonGrammar document(*schema);
    EXPECT_TRUE(document.FeedAll(*schema, sink->text));
    if (sink->info.reason != FinishReason::kStop) continue;
    ++whole;
    const nlohmann::json pet = nlohmann::json::parse(sink->text);
    ASSERT_TRUE(pet.is_object());
    EXPECT_TRUE(pet["name"].is_string() && pet["name"].get<std::string>().size() <= 20 * 4);
    EXPECT_TRUE(pet["age"].is_number_integer());
    EXPECT_TRUE(pet["kind"] == "cat" || pet["kind"] == "dog" || pet["kind"] == "bird");
    for (const auto& [key, value] : pet.items()) {
      EXPECT_TRUE(key == "name" || key == "age" || key == "kind" || key == "toys") << key;
    }
    if (pet.contains("toys")) {
      EXPECT_LE(pet["toys"].size(), 3u);
    }
  }
  EXPECT_GE(whole, 3);
}

// The value keywords hold every draw: bounds, patterns, a format and an
// enum of numbers and null, on the model's own tokens.
TEST_F(EngineJsonTest, ValueKeywordsHoldEveryDraw) {
  const auto schema = std::make_shared<const JsonSchema>(OrderSchema());
  int whole = 0;
  for (const auto& sink : Draws(schema, "Describe an order as JSON.", 11)) {
    SCOPED_TRACE(sink->text);
    ASSERT_TRUE(sink->finished);
    if (sink->info.reason != FinishReason::kStop) continue;
    ++whole;
    const nlohmann::json order = nlohmann::json::parse(sink->text);
    const auto age = order.at("age").get<int64_t>();
    EXPECT_TRUE(age >= 1 && age <= 30);
    const auto score = order.at("score").get<double>();
    EXPECT_TRUE(score >= 0 && score <= 1);
    EXPECT_TRUE(
        std::regex_match(order.at("code").get<std::string>(), std::regex("[A-Z]{3}-[0-9]{2}")));
    EXPECT_TRUE(std::regex_match(order.at("born").get<std::string>(),
                                 std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}")));
    const nlohmann::json& size = order.at("size");
    EXPECT_TRUE(size.is_null() || size == 1 || size == 2 || size == 3);
  }
  EXPECT_GE(whole, 3);
}

// The mask on the model's own vocabulary (UTF-8 pieces, runs of spaces and
// newlines, pieces like " {}" and "\":") allows exactly what the grammar
// takes token by token, at every state of a document tokenized as the model
// would write it; ends of generation only once it is whole.
void ExpectTheMaskIsTheGrammar(const Tokenizer& tokenizer,
                               const std::shared_ptr<const JsonSchema>& schema,
                               const std::string& doc) {
  const JsonConstraint constraint(tokenizer);
  const std::vector<int32_t> ids = tokenizer.Encode(doc, /*add_special=*/false).value();
  JsonGrammar document(*schema);
  JsonPhase phase = JsonPhase::kDocument;
  std::vector<float> logits(tokenizer.vocab_size());
  for (size_t t = 0; t <= ids.size(); ++t) {
    SCOPED_TRACE("after " + tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.begin() + t)));
    std::fill(logits.begin(), logits.end(), 0.f);
    constraint.Mask(schema, document, JsonPhase::kDocument, {}, absl::MakeSpan(logits));
    int32_t allowed = 0;
    for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
      JsonGrammar copy = document;
      const bool text = !tokenizer.IsSpecial(id) && !tokenizer.SkippedAsSpecial(id);
      const bool want = tokenizer.IsEndOfGeneration(id)
                            ? document.Complete()
                            : text && copy.FeedAll(*schema, tokenizer.TokenBytes(id));
      ASSERT_EQ(logits[id] == 0.f, want)
          << "token " << id << " [" << tokenizer.TokenBytes(id) << "]";
      allowed += want;
    }
    ASSERT_GT(allowed, 0);
    if (t < ids.size()) {
      constraint.Advance(*schema, ids[t], &phase, &document);
    }
  }
  EXPECT_TRUE(document.Complete());
  // An end of generation leaves the document as it was.
  const JsonGrammar before = document;
  constraint.Advance(*schema, tokenizer.eos_id(), &phase, &document);
  EXPECT_TRUE(document == before);
}

TEST_F(EngineJsonTest, TheMaskOnTheModelsVocabularyIsTheGrammarTokenByToken) {
  SamplingParams json_mode;
  json_mode.response_format = ResponseFormat::kJsonObject;
  ExpectTheMaskIsTheGrammar(
      *model_->tokenizer, json_mode.OutputSchema(),
      "{\n  \"name\": \"Zoë 中文 😀\",\n  \"age\": -12.5e3,\n  \"ok\": [true, false, null, {}],"
      "\"esc\": \"a\\\"b\\u00e9\"}");
  // Bounds, patterns and enums: each count and digit its own state.
  ExpectTheMaskIsTheGrammar(
      *model_->tokenizer, std::make_shared<const JsonSchema>(OrderSchema()),
      R"({"age": 27, "score": 0.75, "code": "ABC-12", "born": "2019-11-30", "size": null})");
}

}  // namespace
}  // namespace cohost::runtime
