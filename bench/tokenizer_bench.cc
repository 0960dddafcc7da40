// Encoding throughput of the default model's tokenizer on a markup-heavy
// prompt, as it is and with Llama 3's 256 "<|reserved_special_token_N|>"
// control tokens added: every '<' is where a special token may start; and
// with Qwen's NFC normalizer turned on (the check that the text is already
// NFC, a pass over each run of text).
// Run: build/bench/tokenizer_bench; results in bench/RESULTS.md.

#include <string>

#include "benchmark/benchmark.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

// 1 MiB of HTML.
const std::string& Html() {
  static const std::string* html = [] {
    auto* s = new std::string;
    while (s->size() < (size_t{1} << 20)) {
      *s += "<div class=\"a\"><p>Hello <b>world</b></p><br/></div>\n";
    }
    return s;
  }();
  return *html;
}

void BM_EncodeHtml(benchmark::State& state) {
  LoadOptions options;
  options.load_tensors = false;
  absl::StatusOr<ModelFile> file = LoadModelFile(COHOST_DEFAULT_MODEL, options);
  if (!file.ok()) return state.SkipWithError(std::string(file.status().message()).c_str());
  TokenizerSpec spec = file->tokenizer;
  spec.normalize_nfc = state.range(1) != 0;
  for (int i = 0; i < state.range(0); ++i) {
    spec.tokens.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
    spec.token_types.push_back(TokenType::kControl);
    if (!spec.scores.empty()) spec.scores.push_back(0);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::Create(spec);
  if (!tokenizer.ok())
    return state.SkipWithError(std::string(tokenizer.status().message()).c_str());
  for (auto _ : state) {
    absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(Html());
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(Html().size()));
}
BENCHMARK(BM_EncodeHtml)
    ->ArgNames({"extra_specials", "nfc"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({256, 0})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cohost::runtime

BENCHMARK_MAIN();
