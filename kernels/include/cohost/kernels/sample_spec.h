// What Backend::SampleRows takes for each row, and what Backend::RowLogprobs
// gives back: sampling on the device.
#pragma once

#include <cstdint>

namespace cohost::kernels {

// How Backend::SampleRows draws one row's token. Each filter is a threshold
// on the weight w = exp((logit - max) / temperature), 1 for the largest and
// 0 where the exponent is below -104 (as the host Sampler, runtime/sampling):
// top_k keeps weights at least the k-th largest (ties at the cut all stay),
// top_p then the largest weights whose mass first reaches top_p of what is
// left (ties at the cut all stay), min_p then weights of at least min_p.
// The draw walks the kept tokens in id order to `uniform` of their mass.
struct SampleSpec {
  float temperature = 0.f;  // <= 0 or NaN: the argmax (the host Sampler's greedy rule)
  int32_t top_k = 0;        // 0 (or >= the row's width): off
  float top_p = 1.f;        // (0, 1]
  float min_p = 0.f;        // [0, 1]
  float uniform = 0.f;      // the row's random draw, in [0, 1)
};

// One token whose logit a row's bias and penalties move before its draw, as
// the host Sampler's ApplyPenalties does: l += add (the request's logit
// bias, first, as vLLM applies it); then where repetition != 1, l = l > 0 ?
// l / repetition : l * repetition; then l -= subtract (presence + frequency
// * count, in float, for a generated token). NaN stays NaN.
struct PenaltyTerm {
  int32_t token = 0;
  float repetition = 1.f;
  float subtract = 0.f;
  float add = 0.f;
};

// A logit `l` moved by term `t`'s rule (above): the host Sampler's and the
// CPU op's. The CUDA kernel writes it with IEEE intrinsics, to the same bits.
inline float PenalizedLogit(float l, const PenaltyTerm& t) {
  l += t.add;
  if (t.repetition != 1.f) l = l > 0.f ? l / t.repetition : l * t.repetition;
  return l - t.subtract;
}

// A token and its log-probability under a row's raw logits (its log-softmax).
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;  // -inf for a token the row rules out (or a NaN logit)
};

// The most alternatives Backend::RowLogprobs gives a row (the CUDA kernel
// keeps each thread's candidates in shared memory).
inline constexpr int32_t kMaxTopLogprobs = 20;

}  // namespace cohost::kernels
