// What one engine step costs, as a line: seconds = fixed + per_token * new
// tokens. The fixed part is what every step pays whatever its size (on the CPU
// a pass over the weights; on a GPU launches and the decode's memory reads);
// the per-token part is prefill arithmetic. StepCostFit fits the line online
// from an engine's own steps; its estimate is what TTFT prediction and early
// deadline drops (Engine, scheduler/ttft_predictor.h) are computed from, and
// what the simulator's cost model is made of.
#pragma once

#include <cstdint>
#include <optional>

namespace cohost::runtime {

struct StepCost {
  double fixed_seconds = 0;
  double seconds_per_token = 0;

  // Seconds to compute `tokens` new tokens in steps of at most `step_tokens`
  // (> 0) each: ceil(tokens / step_tokens) fixed costs plus the tokens.
  double Seconds(int64_t tokens, int32_t step_tokens) const;
  // The most new tokens a step of at most `seconds` takes, within
  // [min_tokens, max_tokens]: the step a device executor sizes to a time
  // (scheduler::StepTokenCap), as this line prices it.
  int32_t TokensWithin(double seconds, int32_t min_tokens, int32_t max_tokens) const;
};

// An exponentially weighted least-squares fit of (tokens, seconds) pairs, each
// new step weighing 1 and older ones `decay` times less per step, so the line
// follows the machine (other models' work, thermal limits) within a few dozen
// steps.
class StepCostFit {
 public:
  explicit StepCostFit(double decay = 0.95) : decay_(decay) {}

  void Observe(int64_t tokens, double seconds);

  // nullopt until the steps seen say something about prefill: at least one
  // step of kMinPrefillTokens tokens or more. With step sizes spread apart the
  // line is fitted (a negative intercept is refitted through the origin; a
  // negative slope is taken as 0); with sizes nearly equal (every step a full
  // chunk) the cost is taken as proportional, which is exact near that size.
  std::optional<StepCost> Estimate() const;

  static constexpr int64_t kMinPrefillTokens = 16;

 private:
  double decay_;
  double w_ = 0, x_ = 0, y_ = 0, xx_ = 0, xy_ = 0;  // weighted sums
  bool seen_prefill_ = false;
};

}  // namespace cohost::runtime
