#include "scheduler/ttft_predictor.h"

#include <algorithm>
#include <cmath>

namespace cohost::scheduler {
namespace {

runtime::Clock::duration SecondsToDuration(double seconds) {
  return std::chrono::duration_cast<runtime::Clock::duration>(
      std::chrono::duration<double>(seconds));
}

}  // namespace

std::optional<runtime::Clock::duration> PredictTtft(const PrefillQueue& own,
                                                    absl::Span<const PrefillQueue> others,
                                                    int64_t prompt_tokens,
                                                    runtime::Clock::duration to_ready) {
  if (!own.cost) return std::nullopt;
  // Its own model's backlog and its prompt are prefilled in the same steps.
  double seconds = own.cost->Seconds(own.tokens + prompt_tokens, own.step_tokens);
  for (const PrefillQueue& q : others) {
    if (q.cost) seconds += q.cost->Seconds(q.tokens, q.step_tokens);
  }
  return to_ready + SecondsToDuration(seconds);
}

TtftVerdict JudgeTtft(runtime::Clock::duration predicted, std::chrono::milliseconds target,
                      int32_t margin_pct) {
  const auto limit = target * (100 + std::max(margin_pct, 0)) / 100;
  if (predicted <= limit) return {};
  const auto over = std::chrono::duration_cast<std::chrono::milliseconds>(predicted - target);
  return {false, std::clamp(over, kMinTtftPushback, kMaxTtftPushback)};
}

void TtftPredictionBook::Record(runtime::Clock::duration predicted,
                                runtime::Clock::duration actual) {
  const double p = std::chrono::duration<double>(predicted).count();
  const double a = std::chrono::duration<double>(actual).count();
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.count;
  totals_.predicted_seconds += p;
  totals_.actual_seconds += a;
  totals_.abs_error_seconds += std::abs(a - p);
}

TtftPredictionTotals TtftPredictionBook::totals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_;
}

}  // namespace cohost::scheduler
