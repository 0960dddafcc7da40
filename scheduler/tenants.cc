#include "scheduler/tenants.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/quote.h"
#include "scheduler/admission.h"

namespace cohost::scheduler {

struct TenantBook::Ticket::State {
  TenantLimits limits;
  // Counted up under the book's lock; down by a ticket as it goes, with or
  // without it (only ever lowering what Admit weighs).
  std::atomic<int32_t> streams{0};
  int64_t queued_prompt_tokens = 0;
  double bucket = 0;  // tokens it may still use; below 0 after generation ran over
  runtime::Clock::time_point refilled;

  double rate_per_second() const { return static_cast<double>(limits.tokens_per_minute) / 60.0; }
  // Tops the bucket up to `now`; a rate of 0 has no bucket.
  void Refill(runtime::Clock::time_point now) {
    if (limits.tokens_per_minute <= 0) return;
    const double seconds = std::chrono::duration<double>(now - refilled).count();
    if (seconds > 0) {
      bucket = std::min(static_cast<double>(limits.tokens_per_minute),
                        bucket + seconds * rate_per_second());
      refilled = now;
    }
  }
  bool at_rest() const {
    return streams == 0 && queued_prompt_tokens == 0 &&
           (limits.tokens_per_minute <= 0 ||
            bucket >= static_cast<double>(limits.tokens_per_minute));
  }
};

const TenantLimits& TenantPolicy::For(const std::string& tenant) const {
  auto it = named.find(tenant);
  return it == named.end() ? defaults : it->second;
}

TenantBook::Ticket::~Ticket() {
  if (state_ != nullptr && !closed_) state_->streams.fetch_sub(1, std::memory_order_release);
}

TenantBook::TenantBook(TenantPolicy policy) : policy_(std::move(policy)) {}
TenantBook::~TenantBook() = default;

absl::Status TenantBook::CheckPriority(const std::string& tenant, int32_t priority) const {
  const int32_t most = policy_.For(tenant).max_priority;
  if (priority <= most) return absl::OkStatus();
  return WithRefusalReason(
      absl::PermissionDeniedError(absl::StrFormat(
          "priority %d is above tenant %s's max_priority of %d (the operator's to raise; the "
          "HTTP API's priority counts the other way, lower first as vLLM's, so there it is %d "
          "and the least allowed %d)",
          priority, Quote(tenant), most, -static_cast<int64_t>(priority),
          -static_cast<int64_t>(most))),
      "tenant_priority");
}

absl::Status TenantBook::CheckChoices(const std::string& tenant, int32_t choices) const {
  const TenantLimits& limits = policy_.For(tenant);
  if (limits.max_streams > 0 && choices > limits.max_streams) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d choices are more than tenant %s's %d requests in flight (max_streams)",
                        choices, Quote(tenant), limits.max_streams));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> TenantBook::Admit(
    const std::string& tenant, int64_t prompt_tokens, runtime::Clock::time_point now) {
  const TenantLimits& limits = policy_.For(tenant);
  auto ticket = std::make_unique<Ticket>();
  ticket->prompt_tokens_ = prompt_tokens;
  if (!limits.has_budget()) return ticket;
  if (limits.tokens_per_minute > 0 && prompt_tokens > limits.tokens_per_minute) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the prompt of %d tokens is more than tenant %s's budget of %d tokens per minute",
        prompt_tokens, Quote(tenant), limits.tokens_per_minute));
  }
  if (limits.max_queued_prompt_tokens > 0 && prompt_tokens > limits.max_queued_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the prompt of %d tokens is more than tenant %s's limit of %d queued prompt tokens",
        prompt_tokens, Quote(tenant), limits.max_queued_prompt_tokens));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = states_.find(tenant);
  if (it == states_.end()) {
    if (states_.size() >= kMaxTracked) PruneLocked(now);
    if (states_.size() >= kMaxTracked) {
      return RetryLater(
          "tenant_limit", std::chrono::milliseconds(kBudgetPushbackMs),
          absl::StrFormat("%d tenants with budgets are active, the most tracked at once; retry "
                          "later",
                          states_.size()));
    }
    auto state = std::make_shared<State>();
    state->limits = limits;
    state->bucket = static_cast<double>(limits.tokens_per_minute);
    state->refilled = now;
    it = states_.emplace(tenant, std::move(state)).first;
  }
  State& s = *it->second;
  s.Refill(now);
  const int32_t streams = s.streams.load(std::memory_order_acquire);
  if (limits.max_streams > 0 && streams >= limits.max_streams) {
    return RetryLater(
        "tenant_streams", std::chrono::milliseconds(kBudgetPushbackMs),
        absl::StrFormat("tenant %s has %d requests in flight, its limit (max_streams); retry later",
                        Quote(tenant), streams));
  }
  if (limits.max_queued_prompt_tokens > 0 &&
      s.queued_prompt_tokens + prompt_tokens > limits.max_queued_prompt_tokens) {
    return RetryLater(
        "tenant_queued_tokens", std::chrono::milliseconds(kBudgetPushbackMs),
        absl::StrFormat("tenant %s has %d prompt tokens queued; %d more would pass its limit of "
                        "%d (max_queued_prompt_tokens); retry later",
                        Quote(tenant), s.queued_prompt_tokens, prompt_tokens,
                        limits.max_queued_prompt_tokens));
  }
  if (limits.tokens_per_minute > 0 && s.bucket < static_cast<double>(prompt_tokens)) {
    const double wait_s = (static_cast<double>(prompt_tokens) - s.bucket) / s.rate_per_second();
    const auto pushback_ms = static_cast<int64_t>(std::ceil(wait_s * 1000));
    return RetryLater(
        "tenant_rate", std::chrono::milliseconds(pushback_ms),
        absl::StrFormat("tenant %s is over its budget of %d tokens per minute; retry in %d ms",
                        Quote(tenant), limits.tokens_per_minute, pushback_ms));
  }
  s.streams.fetch_add(1, std::memory_order_relaxed);
  s.queued_prompt_tokens += prompt_tokens;
  if (limits.tokens_per_minute > 0) s.bucket -= static_cast<double>(prompt_tokens);
  ticket->state_ = it->second;
  return ticket;
}

void TenantBook::Refused(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = ticket.state_.get();
  if (s == nullptr || ticket.finished_) return;
  if (s->limits.tokens_per_minute > 0) {
    s->bucket = std::min(static_cast<double>(s->limits.tokens_per_minute),
                         s->bucket + static_cast<double>(ticket.prompt_tokens_));
  }
  FinishLocked(ticket, *s);
  ticket.closed_ = true;
  s->streams.fetch_sub(1, std::memory_order_release);
}

void TenantBook::Scheduled(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = ticket.state_.get();
  if (s == nullptr || !ticket.queued_) return;
  ticket.queued_ = false;
  s->queued_prompt_tokens -= ticket.prompt_tokens_;
}

void TenantBook::Generated(Ticket& ticket, int64_t tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = ticket.state_.get();
  if (s == nullptr || s->limits.tokens_per_minute <= 0 || tokens <= 0) return;
  s->bucket -= static_cast<double>(tokens);
}

void TenantBook::Finished(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = ticket.state_.get();
  if (s == nullptr || ticket.finished_) return;
  FinishLocked(ticket, *s);
}

void TenantBook::FinishLocked(Ticket& ticket, State& s) {
  if (ticket.queued_) s.queued_prompt_tokens -= ticket.prompt_tokens_;
  ticket.queued_ = false;
  ticket.finished_ = true;
}

size_t TenantBook::tracked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return states_.size();
}

void TenantBook::PruneLocked(runtime::Clock::time_point now) {
  for (auto it = states_.begin(); it != states_.end();) {
    it->second->Refill(now);
    if (it->second->at_rest()) {
      states_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace cohost::scheduler
