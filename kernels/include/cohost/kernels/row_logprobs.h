// One row's log-softmax at a chosen token and at its most likely ones, on the
// host: the reference of Backend::RowLogprobs (kernels/cuda/row_logprobs.cu),
// and the rule the host Sampler's callers use (runtime/sampling/logprobs.h).
// Header-only, so that code which links no kernels (the sampling library,
// which the client carries) shares the one rule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cohost/kernels/sample_spec.h"
#include "common/bounded_heap.h"

namespace cohost::kernels {

// out[0] = {chosen, its logprob}; out[1 + i] = the i-th most likely token,
// higher logit first, ties to the lower id, for i < min(top_n, width). NaN
// counts as -inf; every logprob is -inf where the largest logit is not
// finite, and a chosen id outside [0, width) gets -inf. The normalizer is
// summed in double. top_n >= 0.
inline void LogprobsOfRow(const float* x /*[width]*/, int32_t width, int32_t chosen, int32_t top_n,
                          TokenLogprob* out /*[1 + min(top_n, width)]*/) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  auto finite = [](float v) { return std::isnan(v) ? -kInf : v; };
  float max = -kInf;
  for (int32_t i = 0; i < width; ++i) max = std::max(max, finite(x[i]));
  // log(sum exp(x)) = max + log(sum exp(x - max)), summed in double.
  double lse = max;
  if (std::isfinite(max)) {
    double sum = 0;
    for (int32_t i = 0; i < width; ++i) sum += std::exp(static_cast<double>(finite(x[i])) - max);
    lse += std::log(sum);
  }
  auto logprob = [&](int32_t id) {
    const float v = finite(x[id]);
    if (!std::isfinite(v) || !std::isfinite(lse)) return -kInf;
    return static_cast<float>(v - lse);
  };
  out[0] = {chosen, chosen >= 0 && chosen < width ? logprob(chosen) : -kInf};

  const int32_t n = std::clamp(top_n, 0, width);
  if (n == 0) return;
  // The n best in one pass (common/bounded_heap.h), higher logit first, then
  // lower id: O(width log n), nothing width-sized copied.
  auto higher = [&](int32_t a, int32_t b) {
    const float xa = finite(x[a]);
    const float xb = finite(x[b]);
    return xa != xb ? xa > xb : a < b;
  };
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < width; ++i) OfferBounded(ids, static_cast<size_t>(n), i, higher);
  std::sort_heap(ids.begin(), ids.end(), higher);
  for (int32_t i = 0; i < n; ++i) out[1 + i] = {ids[i], logprob(ids[i])};
}

}  // namespace cohost::kernels
