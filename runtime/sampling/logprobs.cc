// A request's logprobs from a row of logits, or from the device's row.

#include "runtime/sampling/logprobs.h"

#include <algorithm>

#include "cohost/kernels/row_logprobs.h"

namespace cohost::runtime {

TokenLogprobs ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (vocab == 0) return {};
  std::vector<TokenLogprob> row(1 + static_cast<size_t>(std::clamp(top_n, 0, vocab)));
  kernels::LogprobsOfRow(logits.data(), vocab, chosen, top_n, row.data());
  return FromRow(row, top_n);
}

TokenLogprobs FromRow(absl::Span<const TokenLogprob> row, int32_t top_n) {
  TokenLogprobs out;
  if (row.empty()) return out;
  out.chosen = row[0];
  const size_t n = std::min(row.size() - 1, static_cast<size_t>(std::max(top_n, 0)));
  out.top.assign(row.begin() + 1, row.begin() + 1 + static_cast<std::ptrdiff_t>(n));
  return out;
}

}  // namespace cohost::runtime
