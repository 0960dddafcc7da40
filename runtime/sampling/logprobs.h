// Log-probabilities of a sampled token and of the most likely alternatives,
// from one sequence's raw logits (the model's distribution: before penalties,
// temperature and truncation, as vLLM's default "raw" logprobs). The engine
// computes them only for requests that ask (SamplingParams::logprobs): on the
// device (Backend::RowLogprobs) where it samples there, else on the host
// here, by the same rule (kernels::LogprobsOfRow).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "cohost/kernels/sample_spec.h"

namespace cohost::runtime {

using TokenLogprob = kernels::TokenLogprob;

struct TokenLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // most likely first, ties to the lower id
};

// `logits` as the model produced them ([vocab]); `chosen` in [0, vocab);
// top_n >= 0 (clamped to the vocabulary). O(vocab) plus O(vocab log top_n).
TokenLogprobs ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n);

// A row of Backend::RowLogprobs ({chosen, then the top}) as a request's
// logprobs, keeping the first top_n alternatives.
TokenLogprobs FromRow(absl::Span<const TokenLogprob> row, int32_t top_n);

}  // namespace cohost::runtime
