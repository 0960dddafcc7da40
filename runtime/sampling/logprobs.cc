// Log-softmax of one row, for the chosen token and the top N.

#include "runtime/sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/sampling/bounded_heap.h"

namespace cohost::runtime {
namespace {

float Finite(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

}  // namespace

TokenLogprobs ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n) {
  TokenLogprobs out;
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (vocab == 0) return out;
  float max = -std::numeric_limits<float>::infinity();
  for (float x : logits) max = std::max(max, Finite(x));
  // log(sum exp(x)) = max + log(sum exp(x - max)), summed in double.
  double sum = 0;
  if (std::isfinite(max)) {
    for (float x : logits) sum += std::exp(static_cast<double>(Finite(x)) - max);
  }
  const double lse = std::isfinite(max) ? max + std::log(sum) : max;
  auto logprob = [&](int32_t id) {
    const float x = Finite(logits[static_cast<size_t>(id)]);
    if (!std::isfinite(x) || !std::isfinite(lse)) return -std::numeric_limits<float>::infinity();
    return static_cast<float>(x - lse);
  };
  out.chosen = {chosen, logprob(chosen)};

  const int32_t n = std::clamp(top_n, 0, vocab);
  if (n == 0) return out;
  // The n best in one pass (bounded_heap.h), higher logit first, then lower
  // id: O(vocab log n), no vocab-sized copy.
  auto higher = [&](int32_t a, int32_t b) {
    const float xa = Finite(logits[static_cast<size_t>(a)]);
    const float xb = Finite(logits[static_cast<size_t>(b)]);
    return xa != xb ? xa > xb : a < b;
  };
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < vocab; ++i) OfferBounded(ids, static_cast<size_t>(n), i, higher);
  std::sort_heap(ids.begin(), ids.end(), higher);
  out.top.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    out.top.push_back({id, logprob(id)});
  }
  return out;
}

}  // namespace cohost::runtime
