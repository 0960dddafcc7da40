// Log-probabilities of a sampled token and of the most likely alternatives,
// from one sequence's raw logits (the model's distribution: before penalties,
// temperature and truncation, as vLLM's default "raw" logprobs). The engine
// computes them only for requests that ask (SamplingParams::logprobs).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace cohost::runtime {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;  // -inf for a token the model rules out (or a NaN logit)
};

struct TokenLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // most likely first, ties to the lower id
};

// `logits` as the model produced them ([vocab]); `chosen` in [0, vocab);
// top_n >= 0 (clamped to the vocabulary). O(vocab) plus O(vocab log top_n).
TokenLogprobs ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n);

}  // namespace cohost::runtime
