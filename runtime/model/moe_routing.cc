// RouteTokens: softmax and top-k per token, then a counting sort of the
// (token, expert) pairs by expert.
#include "runtime/model/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace cohost::runtime {
namespace {

// Row `logits`' top k (indices into `picked`, the more probable first, ties
// to the lower index) and their probabilities under the row's softmax.
void RouteRow(const float* logits, int32_t num_experts, int32_t k, bool normalize,
              std::vector<int32_t>& order, int32_t* picked, float* weights) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  auto value = [&](int32_t e) { return std::isnan(logits[e]) ? kNegInf : logits[e]; };
  order.resize(static_cast<size_t>(num_experts));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    const float va = value(a), vb = value(b);
    return va > vb || (va == vb && a < b);
  });
  const float max = value(order[0]);
  // exp(logit - max) of each expert; without a finite max, 1 for every
  // expert at the max (all of them when all are -inf) and 0 elsewhere.
  auto mass = [&](int32_t e) -> double {
    if (!std::isfinite(max)) return value(e) == max ? 1.0 : 0.0;
    return std::exp(static_cast<double>(value(e)) - max);
  };
  double total = 0;
  if (normalize) {
    for (int32_t j = 0; j < k; ++j) total += mass(order[j]);
  } else {
    for (int32_t e = 0; e < num_experts; ++e) total += mass(e);
  }
  for (int32_t j = 0; j < k; ++j) {
    picked[j] = order[j];
    weights[j] = total > 0 ? static_cast<float>(mass(order[j]) / total) : 0.f;
  }
}

}  // namespace

void RouteTokens(const float* logits, int32_t n, int32_t num_experts, int32_t k, bool normalize,
                 ExpertRoute* out) {
  ExpertRoute& r = *out;
  const size_t pairs = static_cast<size_t>(n) * k;
  r.experts.resize(pairs);
  r.weights.resize(pairs);
  std::vector<int32_t> order;
  for (int32_t t = 0; t < n; ++t) {
    RouteRow(logits + static_cast<size_t>(t) * num_experts, num_experts, k, normalize, order,
             r.experts.data() + static_cast<size_t>(t) * k,
             r.weights.data() + static_cast<size_t>(t) * k);
  }
  r.starts.assign(static_cast<size_t>(num_experts) + 1, 0);
  for (const int32_t e : r.experts) ++r.starts[e + 1];
  std::partial_sum(r.starts.begin(), r.starts.end(), r.starts.begin());
  std::vector<int32_t> next(r.starts.begin(), r.starts.end() - 1);
  r.token_of_row.resize(pairs);
  r.row_of_pair.resize(pairs);
  for (size_t p = 0; p < pairs; ++p) {
    const int32_t row = next[r.experts[p]]++;
    r.token_of_row[row] = static_cast<int32_t>(p / k);
    r.row_of_pair[p] = row;
  }
}

}  // namespace cohost::runtime
