// Turns one sequence's logits into a token id: logit bias, penalties, temperature, top-k, top-p,
// min-p, then a draw from a per-request RNG. One Sampler per request; it draws
// by the rule of the sampling ops in kernels/ (SampleSpec, Backend::SampleRows),
// so a request draws the same token from the same logits on the host and on a
// device.
#pragma once

#include <cstdint>
#include <random>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "runtime/sampling/sampling_params.h"

namespace cohost::runtime {

// Order of processing (as vLLM does it):
//   1. NaN logits become -inf (never chosen unless nothing else is left).
//   2. logit_bias: logit += bias, for the tokens it names; then the
//      penalties: repetition over the distinct ids of prompt+generated
//      (logit > 0 ? logit / p : logit * p); then presence and frequency over the
//      generated ids (logit -= presence * [count > 0] + frequency * count).
//   3. temperature == 0: argmax, ties to the lowest id. Done.
//   4. weights w = exp((logit - max) / temperature) in float (1 for the max, 0
//      where the exponent is below -104; +inf logits share the mass, weight 1 each).
//   5. top-k keeps the weights at least the k-th largest, 6. top-p then the
//      largest weights whose mass first reaches top_p of what is left, 7. min-p
//      then the weights at least min_p (of the max, 1). Ties at a cut all stay,
//      as vLLM's and transformers' masks keep them.
//   8. the draw: the request's std::mt19937_64 gives u (53 bits, then float,
//      below 1), and the kept tokens are walked in id order to u of their mass.
// Equal seeds and logits give equal tokens on every standard library and on
// Backend::SampleRows. Cost is O(vocab) per call, plus O(vocab log k) for top-k;
// top-p uses a weighted selection, not a sort.
// Its vocabulary-long working arrays belong to the calling thread, not the
// Sampler: one set per stepping thread rather than ~25 bytes x vocab per
// request (3.8 MB for a 152k vocabulary) for as long as it lives.
class Sampler {
 public:
  // default_seed is used when params.seed is unset (the caller picks a random one).
  // params should have passed Validate(); out-of-range values are clamped, not fatal.
  Sampler(const SamplingParams& params, uint64_t default_seed);

  // logits: [vocab] of one sequence, modified in place: on return it holds the
  // biased and penalized logits (step 2, NaN as -inf). history: prompt then generated ids
  // (num_prompt_tokens tells where generated begins); ids outside [0, vocab) are
  // ignored. Returns the chosen id; 0 if logits is empty, the lowest id if no logit
  // is finite. Exactly one RNG draw per non-greedy call.
  int32_t Sample(absl::Span<float> logits, absl::Span<const int32_t> history,
                 int32_t num_prompt_tokens);

  // Sample is the argmax of the logits as given (temperature 0, no penalty):
  // the first of the largest, NaN as -inf, 0 if none is above -inf
  // (Backend::SampleRows computes the same on the device).
  bool IsGreedy() const { return params_.temperature == 0.f && !HasPenalties(); }
  // Whether Sample rewrites the logits from the history first.
  bool HasPenalties() const {
    return params_.repetition_penalty != 1.f || params_.presence_penalty != 0.f ||
           params_.frequency_penalty != 0.f || !params_.logit_bias.empty();
  }
  // The parameters as sampled with (out-of-range values turned off).
  const SamplingParams& params() const { return params_; }
  // The draw a non-greedy Sample takes, for a caller that samples elsewhere
  // (on the device): the same sequence of numbers, one per token.
  double NextUniform() { return UniformDouble(); }
  // The logit bias and penalties Sample applies, token by token, for a
  // caller that applies them elsewhere (on the device): `fn(term)` once per
  // distinct id in [0, vocab) that the bias or a penalty of `history` moves
  // (kernels::PenaltyTerm's rule, kernels::PenalizedLogit). `fn` must not
  // sample or ask for penalties itself (they share the thread's working
  // arrays).
  void ForEachPenalty(absl::Span<const int32_t> history, int32_t num_prompt_tokens, int64_t vocab,
                      absl::FunctionRef<void(const kernels::PenaltyTerm&)> fn);

 private:
  void ApplyPenalties(absl::Span<float> logits, absl::Span<const int32_t> history,
                      int32_t num_prompt_tokens);
  double UniformDouble();  // [0, 1), identical on every standard library

  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace cohost::runtime
