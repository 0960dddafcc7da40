#include "scheduler/executor_policy.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace cohost::scheduler {
namespace {

// The TTFT deadline of the engine's oldest request still without a first
// token, when that deadline can still be met.
std::optional<Clock::time_point> OnTimeDeadline(const EngineCandidate& e, Clock::time_point now) {
  if (!e.has_work || !e.oldest_awaiting_first) return std::nullopt;
  const Clock::time_point d = *e.oldest_awaiting_first + e.ttft_target;
  if (d < now) return std::nullopt;
  return d;
}

// When the engine's next step was due, where that is more than
// kStarvedTargets of its TPOT target ago (executor_policy.h says when a step
// is due); nullopt when it is not starved.
std::optional<Clock::time_point> StarvedDue(const EngineCandidate& e, Clock::time_point now) {
  if (!e.has_work || e.tpot_target.count() <= 0) return std::nullopt;
  std::optional<Clock::time_point> since = e.last_step_end;
  if (!e.decoding) {
    // Only first tokens: starved once late, waiting since the later of the
    // deadline and the engine's last step.
    if (!e.oldest_awaiting_first || OnTimeDeadline(e, now)) return std::nullopt;
    const Clock::time_point deadline = *e.oldest_awaiting_first + e.ttft_target;
    since = since ? std::max(*since, deadline) : deadline;
  }
  if (!since) return std::nullopt;
  const Clock::time_point due = *since + e.tpot_target;
  if (now - due <= kStarvedTargets * e.tpot_target) return std::nullopt;
  return due;
}

}  // namespace

std::optional<EnginePick> PickNextEngine(absl::Span<const EngineCandidate> engines,
                                         Clock::time_point now, bool after_promotion) {
  // Rank: (class, deadline, last_stepped, index). Class -1: a starved model,
  // unless the last pick promoted one; class 0: a first token whose deadline
  // can still be met; class 1: everything else with work.
  std::optional<size_t> best;
  std::tuple<int, Clock::time_point, int64_t> best_key;
  size_t on_time_engines = 0;
  bool best_on_time = false;
  for (size_t i = 0; i < engines.size(); ++i) {
    const EngineCandidate& e = engines[i];
    if (!e.has_work) continue;
    const std::optional<Clock::time_point> on_time = OnTimeDeadline(e, now);
    on_time_engines += on_time.has_value();
    const std::optional<Clock::time_point> starved =
        after_promotion ? std::nullopt : StarvedDue(e, now);
    const int cls = starved ? -1 : on_time ? 0 : 1;
    // Class -1 goes by when its step was due (what made it starved), class
    // 1 by the deadline of its next token.
    const Clock::time_point deadline = cls == 0          ? *on_time
                                       : starved         ? *starved
                                       : e.last_step_end ? *e.last_step_end + e.tpot_target
                                                         : Clock::time_point::min();
    const auto key = std::make_tuple(cls, deadline, e.last_stepped);
    if (!best || key < best_key) {
      best = i;
      best_key = key;
      best_on_time = on_time.has_value();
    }
  }
  if (!best) return std::nullopt;
  // A starved model picked ahead of another engine's on-time first token.
  const bool promoted =
      std::get<0>(best_key) < 0 && on_time_engines > (best_on_time ? size_t{1} : size_t{0});
  return EnginePick{*best, promoted};
}

bool SliceThisStep(absl::Span<const EngineCandidate> engines, size_t pick, Clock::time_point now) {
  if (pick >= engines.size() || !OnTimeDeadline(engines[pick], now)) return true;
  for (size_t i = 0; i < engines.size(); ++i) {
    if (i != pick && OnTimeDeadline(engines[i], now)) return true;
  }
  return false;
}

int32_t SliceTokens(double tokens_per_second, Clock::duration slice, int32_t min_tokens,
                    int32_t unmeasured_tokens) {
  const int32_t floor = std::max(min_tokens, 1);
  if (!(tokens_per_second > 0)) return std::max(unmeasured_tokens, floor);
  const double seconds = std::chrono::duration<double>(slice).count();
  const double tokens = std::floor(tokens_per_second * seconds);
  if (tokens >= static_cast<double>(INT32_MAX)) return INT32_MAX;
  return std::max(static_cast<int32_t>(tokens), floor);
}

int32_t StepTokenCap(absl::Span<const EngineCandidate> engines, size_t pick, Clock::time_point now,
                     const StepSlicing& slicing, double tokens_per_second) {
  if (pick >= engines.size()) return 0;
  auto tokens_in = [&](Clock::duration d) {
    return SliceTokens(tokens_per_second, d, slicing.min_tokens, slicing.unmeasured_tokens);
  };
  int32_t cap = 0;
  if (engines.size() > 1 && slicing.slice.count() > 0 && SliceThisStep(engines, pick, now)) {
    cap = tokens_in(slicing.slice);
  }
  const EngineCandidate& e = engines[pick];
  if (e.decoding && e.tpot_target.count() > 0) {
    const int32_t tpot = tokens_in(e.tpot_target);
    cap = cap > 0 ? std::min(cap, tpot) : tpot;
  }
  return cap;
}

}  // namespace cohost::scheduler
