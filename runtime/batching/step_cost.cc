#include "runtime/batching/step_cost.h"

#include <algorithm>
#include <cmath>

namespace cohost::runtime {

double StepCost::Seconds(int64_t tokens, int32_t step_tokens) const {
  if (tokens <= 0) return 0;
  const int64_t per_step = std::max<int32_t>(1, step_tokens);
  const int64_t steps = (tokens + per_step - 1) / per_step;
  return static_cast<double>(steps) * fixed_seconds +
         static_cast<double>(tokens) * seconds_per_token;
}

int32_t StepCost::TokensWithin(double seconds, int32_t min_tokens, int32_t max_tokens) const {
  const int32_t hi = std::max(max_tokens, 1);
  const int32_t lo = std::clamp(min_tokens, 1, hi);
  if (!(seconds_per_token > 0)) return seconds >= fixed_seconds ? hi : lo;
  const double tokens = std::floor((seconds - fixed_seconds) / seconds_per_token);
  if (!(tokens >= lo)) return lo;  // also NaN
  return tokens >= hi ? hi : static_cast<int32_t>(tokens);
}

void StepCostFit::Observe(int64_t tokens, double seconds) {
  if (tokens <= 0 || !(seconds >= 0)) return;  // nothing computed, or a bad clock reading
  const double x = static_cast<double>(tokens);
  w_ = decay_ * w_ + 1;
  x_ = decay_ * x_ + x;
  y_ = decay_ * y_ + seconds;
  xx_ = decay_ * xx_ + x * x;
  xy_ = decay_ * xy_ + x * seconds;
  seen_prefill_ = seen_prefill_ || tokens >= kMinPrefillTokens;
}

std::optional<StepCost> StepCostFit::Estimate() const {
  if (!seen_prefill_ || w_ <= 0) return std::nullopt;
  const double mean_x = x_ / w_;
  const double mean_y = y_ / w_;
  const double var_x = xx_ / w_ - mean_x * mean_x;
  const double cov_xy = xy_ / w_ - mean_x * mean_y;
  StepCost cost;
  // Sizes within a few tokens of each other cannot separate the fixed part.
  constexpr double kMinSpread = 8.0;  // tokens, as a standard deviation
  if (var_x < kMinSpread * kMinSpread) {
    cost.seconds_per_token = mean_y / mean_x;
    return cost;
  }
  cost.seconds_per_token = std::max(0.0, cov_xy / var_x);
  cost.fixed_seconds = mean_y - cost.seconds_per_token * mean_x;
  if (cost.fixed_seconds < 0) {
    cost.fixed_seconds = 0;
    cost.seconds_per_token = xy_ / xx_;
  }
  return cost;
}

}  // namespace cohost::runtime
