// What a JSON response format costs a token on the host, over the default
// model's 49,152-token vocabulary at the document's different kinds of
// state (inside a string the grammar takes most tokens, between values few):
// the walk over the vocabulary (TokenMask::Allowed, a state's first time),
// JsonConstraint::Mask on a state it has seen (the mask applied from its
// cache), building the constraint (once per model), and a whole document of
// a JSON schema masked token by token, its schema compiled for the request
// alone (as before InternedSchemas) or shared with the requests before it;
// and the walk inside values held by a pattern or bounds.
// Run: build/bench/json_mask_bench; results in bench/RESULTS.md.

#include <algorithm>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/json_constraint.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "runtime/sampling/interned_schemas.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/sampling/token_mask.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

const Tokenizer& DefaultTokenizer() {
  static const Tokenizer* tokenizer = [] {
    LoadOptions options;
    options.load_tensors = false;
    ModelFile file = LoadModelFile(COHOST_DEFAULT_MODEL, options).value();
    return Tokenizer::Create(file.tokenizer).value().release();
  }();
  return *tokenizer;
}

// The document so far, for each benchmarked state.
const char* const kPrefixes[] = {
    "",                                      // before the object
    "{\"name\": \"A long and winding ",      // inside a string
    "{\"age\": 12",                          // inside a number
    "{\"age\": 12, \"tags\": [true, false",  // between values
};

void BM_Walk(benchmark::State& state) {
  const Tokenizer& tokenizer = DefaultTokenizer();
  const TokenMask mask(TextTokens(tokenizer));
  JsonGrammar document;
  if (!document.FeedAll(kPrefixes[state.range(0)])) return state.SkipWithError("bad prefix");
  std::vector<uint8_t> allowed(tokenizer.vocab_size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        mask.Allowed(JsonSchema::AnyObject(), document, absl::MakeSpan(allowed)));
  }
}
BENCHMARK(BM_Walk)->ArgName("state")->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

// The walk inside values held by value keywords (a date-time's pattern, an
// integer's bounds) beside a free string and a free integer at the same
// point of their text.
constexpr char kValueSchema[] = R"({"type": "object", "properties": {
  "s": {"type": "string"}, "d": {"type": "string", "format": "date-time"},
  "i": {"type": "integer"}, "n": {"type": "integer", "minimum": 0, "maximum": 100000},
  "x": {"type": "number"}, "f": {"type": "number", "minimum": 0, "maximum": 0.5}}})";
const char* const kValuePrefixes[] = {
    "{\"s\": \"2024-",  // a free string
    "{\"d\": \"2024-",  // a date-time
    "{\"i\": 12",       // a free integer
    "{\"n\": 12",       // a bounded one
    "{\"x\": 0.1",      // a free number, in its fraction
    "{\"f\": 0.1",      // one with fractional bounds
};

void BM_WalkValue(benchmark::State& state) {
  const Tokenizer& tokenizer = DefaultTokenizer();
  const TokenMask mask(TextTokens(tokenizer));
  const JsonSchema schema = JsonSchema::Compile(nlohmann::json::parse(kValueSchema)).value();
  JsonGrammar document(schema);
  if (!document.FeedAll(schema, kValuePrefixes[state.range(0)])) {
    return state.SkipWithError("bad prefix");
  }
  std::vector<uint8_t> allowed(tokenizer.vocab_size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(mask.Allowed(schema, document, absl::MakeSpan(allowed)));
  }
}
BENCHMARK(BM_WalkValue)->ArgName("value")->DenseRange(0, 5)->Unit(benchmark::kMicrosecond);

void BM_Mask(benchmark::State& state) {
  const Tokenizer& tokenizer = DefaultTokenizer();
  static const JsonConstraint* constraint = new JsonConstraint(tokenizer);
  SamplingParams json_mode;
  json_mode.response_format = ResponseFormat::kJsonObject;
  const std::shared_ptr<const JsonSchema> schema = json_mode.OutputSchema();
  JsonGrammar document;
  if (!document.FeedAll(kPrefixes[state.range(0)])) return state.SkipWithError("bad prefix");
  std::vector<float> logits(tokenizer.vocab_size());
  for (auto _ : state) {
    constraint->Mask(schema, document, JsonPhase::kDocument, {}, absl::MakeSpan(logits));
    benchmark::DoNotOptimize(logits.data());
  }
}
BENCHMARK(BM_Mask)->ArgName("state")->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

void BM_Build(benchmark::State& state) {
  const Tokenizer& tokenizer = DefaultTokenizer();
  for (auto _ : state) {
    JsonConstraint constraint(tokenizer);
    benchmark::DoNotOptimize(&constraint);
  }
}
BENCHMARK(BM_Build)->Unit(benchmark::kMillisecond);

// A Pydantic-like schema and a document of it, as the model's tokens.
constexpr char kPetSchema[] = R"({"type": "object", "properties": {
  "name": {"type": "string"}, "age": {"type": "integer"},
  "kind": {"enum": ["cat", "dog", "bird"]},
  "toys": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
  "required": ["name", "age", "kind"]})";
constexpr char kPetDocument[] =
    R"({"name": "Whiskers the Third", "age": 7, "kind": "cat", "toys": ["mouse", "yarn ball"]})";

void BM_SchemaDocument(benchmark::State& state) {
  const Tokenizer& tokenizer = DefaultTokenizer();
  static const JsonConstraint* constraint = new JsonConstraint(tokenizer);
  const bool interned = state.range(0) == 1;
  const nlohmann::json schema_json = nlohmann::json::parse(kPetSchema);
  const std::vector<int32_t> ids = tokenizer.Encode(kPetDocument, /*add_special=*/false).value();
  std::vector<float> logits(tokenizer.vocab_size());
  InternedSchemas table;
  for (auto _ : state) {
    // One request: its schema, then a mask and an advance for each token.
    std::shared_ptr<const JsonSchema> schema =
        interned ? table.Compile(schema_json).value()
                 : std::make_shared<const JsonSchema>(JsonSchema::Compile(schema_json).value());
    JsonGrammar document(*schema);
    JsonPhase phase = JsonPhase::kDocument;
    for (const int32_t id : ids) {
      std::fill(logits.begin(), logits.end(), 0.f);
      constraint->Mask(schema, document, phase, {}, absl::MakeSpan(logits));
      if (logits[id] < 0) return state.SkipWithError("the document's token was masked");
      constraint->Advance(*schema, id, &phase, &document);
    }
    if (!document.Complete()) return state.SkipWithError("the document is not whole");
  }
  state.counters["tokens"] = static_cast<double>(ids.size());
}
BENCHMARK(BM_SchemaDocument)->ArgName("interned")->DenseRange(0, 1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
