// Server-side request timings.

#include "server/stream_timing.h"

#include <chrono>

namespace cohost::server {
namespace {

using runtime::Clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

void StreamTiming::OnScheduled() {
  const Clock::time_point now = Clock::now();
  scheduled_ = now;
  if (metrics_ != nullptr && !further_choice_) {
    metrics_->ObserveQueueTime(model_, MsBetween(arrival_, now) / 1000.0);
  }
}

void StreamTiming::OnTokens(int count) {
  if (count <= 0) return;
  const Clock::time_point now = Clock::now();
  if (!first_token_) {
    FirstToken(now);
    // The tokens that came with the first came after it with no wait: a
    // request of n tokens has n - 1 gaps, whose mean is its time per output
    // token ((last - first) / (n - 1)), however its deltas were cut.
    if (metrics_ != nullptr) {
      for (int i = 1; i < count; ++i) metrics_->ObserveInterTokenLatency(model_, 0.0);
    }
  } else if (metrics_ != nullptr) {
    const double gap = MsBetween(*last_token_, now) / 1000.0 / count;
    for (int i = 0; i < count; ++i) metrics_->ObserveInterTokenLatency(model_, gap);
  }
  last_token_ = now;
}

void StreamTiming::FirstToken(Clock::time_point now) {
  first_token_ = now;
  if (metrics_ != nullptr && !further_choice_) {
    const double seconds = MsBetween(arrival_, now) / 1000.0;
    metrics_->ObserveTimeToFirstToken(model_, seconds);
    if (tenant_) metrics_->ObserveTenantTimeToFirstToken(*tenant_, seconds);
  }
}

runtime::FinishInfo StreamTiming::OnFinish(const runtime::FinishInfo& info) {
  // Output that went out only with the end (all of it held back, as the
  // start of a stop string may be) reached the client now. A request
  // cancelled or failed before anything went out had no first token.
  const bool delivered = info.reason == runtime::FinishReason::kStop ||
                         info.reason == runtime::FinishReason::kLength ||
                         info.reason == runtime::FinishReason::kStopString;
  if (!first_token_ && delivered && info.completion_tokens > 0) FirstToken(Clock::now());
  // It left the queue unscheduled (cancelled, past its deadline, its model's
  // load failed): its wait counts too, or the longest waits of an overload
  // would be missing from the histogram.
  if (!scheduled_ && metrics_ != nullptr && !further_choice_) {
    metrics_->ObserveQueueTime(model_, MsBetween(arrival_, Clock::now()) / 1000.0);
  }
  runtime::FinishInfo adjusted = info;
  runtime::RequestTimings& t = adjusted.timings;
  if (scheduled_) t.queue_ms = MsBetween(arrival_, *scheduled_);
  if (first_token_) t.ttft_ms = MsBetween(arrival_, *first_token_);
  t.e2e_ms = MsBetween(arrival_, Clock::now());
  if (metrics_ == nullptr) return adjusted;
  if (further_choice_) {
    metrics_->RecordFurtherChoice(model_, tenant_ ? &*tenant_ : nullptr, adjusted);
  } else {
    metrics_->RecordFinish(model_, adjusted);
    if (tenant_) metrics_->RecordTenantFinish(*tenant_, adjusted);
  }
  return adjusted;
}

}  // namespace cohost::server
