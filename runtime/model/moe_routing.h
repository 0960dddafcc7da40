// Mixture-of-experts routing (Mixtral's, Qwen3-MoE's): which experts each
// token of a step goes to, with what weight, and the rows that puts in
// front of each expert. Computed on the host from the router's fp32 logits:
// the plan decides which products the step issues, so it must be known
// there (a device-side plan and a grouped product that reads it are the
// next step for CUDA; see docs/architecture.md).
#pragma once

#include <cstdint>
#include <vector>

namespace cohost::runtime {

struct ExpertRoute {
  // Token t's experts at [t * k, (t + 1) * k): the k most probable under
  // softmax of its logits, the more probable first (ties to the lower
  // index), and their probabilities, divided by their sum where routed with
  // `normalize`.
  std::vector<int32_t> experts;
  std::vector<float> weights;
  // The n * k (token, j) pairs as rows grouped by expert: expert e's rows
  // are [starts[e], starts[e + 1]), each group in token order. Row r holds
  // token token_of_row[r]'s activations; pair (t, j)'s expert output is
  // row row_of_pair[t * k + j] (Backend::MoeCombine's rows).
  std::vector<int32_t> starts;
  std::vector<int32_t> token_of_row;
  std::vector<int32_t> row_of_pair;

  int32_t rows(int32_t expert) const { return starts[expert + 1] - starts[expert]; }
};

// Routes n tokens by their router logits [n, num_experts] (fp32, row-major)
// to k experts each, 1 <= k <= num_experts. A NaN logit counts as -inf; a
// row without a finite maximum shares its mass evenly among its largest
// logits (all of them where every one is -inf). `out`'s vectors are reused.
void RouteTokens(const float* logits, int32_t n, int32_t num_experts, int32_t k, bool normalize,
                 ExpertRoute* out);

}  // namespace cohost::runtime
