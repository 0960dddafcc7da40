// One-sequence generation: prefill in chunks, then decode token by token,
// streaming UTF-8-safe text through a callback. The continuous-batching Engine
// replaces this loop; it stays as the simplest correct path and a test oracle.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/batching/request.h"
#include "runtime/model/model.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {

struct GenerationResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;  // streamed text, stop string excluded
  FinishReason finish_reason = FinishReason::kLength;
  double ttft_ms = 0;                   // from Generate() to the first token sampled
  double decode_tokens_per_second = 0;  // tokens after the first over their time
  double total_ms = 0;
};

struct GeneratorOptions {
  int32_t block_size = 16;
  int32_t prefill_chunk_tokens = 512;  // prompt tokens per forward step
};

class Generator {
 public:
  // Called with each new piece of text as soon as it is safe to emit; return
  // false to stop generating (the client went away).
  using TextCallback = std::function<bool(std::string_view delta)>;

  Generator(Model* model, const Tokenizer* tokenizer, GeneratorOptions options = {});

  // INVALID_ARGUMENT for an empty prompt, ids outside the vocab, bad sampling
  // parameters, or prompt + max_tokens beyond the model's context.
  absl::StatusOr<GenerationResult> Generate(absl::Span<const int32_t> prompt_ids,
                                            const SamplingParams& params,
                                            const TextCallback& on_text = nullptr);

 private:
  Model* model_;
  const Tokenizer* tokenizer_;
  GeneratorOptions options_;
};

}  // namespace cohost::runtime
