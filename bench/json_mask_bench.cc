// What a JSON response format costs a token on the host, over the default
// model's 49,152-token vocabulary at the document's different kinds of
// state (inside a string the grammar takes most tokens, between values few):
// the walk over the vocabulary (TokenMask::Allowed, a state's first time),
// JsonConstraint::Mask on a state it has seen (the mask applied from its
// cache), and building the constraint (once per engine).
// Run: build/bench/json_mask_bench; results in bench/RESULTS.md.

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/engine/json_constraint.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
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
    constraint->Mask(schema, document, {}, absl::MakeSpan(logits));
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

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
