#include "scheduler/admission.h"

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace cohost::scheduler {
namespace {

constexpr char kPushbackPayload[] = "type.cohost.dev/retry-pushback-ms";
constexpr char kReasonPayload[] = "type.cohost.dev/refusal-reason";

}  // namespace

absl::Status RetryLater(std::string_view reason, std::chrono::milliseconds pushback,
                        std::string_view message) {
  return WithPushback(WithRefusalReason(absl::ResourceExhaustedError(std::string(message)), reason),
                      pushback);
}

std::optional<std::chrono::milliseconds> PushbackToSend(const absl::Status& status,
                                                        std::chrono::milliseconds fallback) {
  const std::optional<std::chrono::milliseconds> carried = RetryPushback(status);
  if (carried) return carried;
  if (status.code() == absl::StatusCode::kResourceExhausted) return fallback;
  return std::nullopt;
}

absl::Status WithPushback(absl::Status status, std::chrono::milliseconds pushback) {
  status.SetPayload(kPushbackPayload, absl::Cord(std::to_string(pushback.count())));
  return status;
}

absl::Status WithRefusalReason(absl::Status status, std::string_view reason) {
  status.SetPayload(kReasonPayload, absl::Cord(std::string(reason)));
  return status;
}

std::string RefusalReason(const absl::Status& status) {
  const auto payload = status.GetPayload(kReasonPayload);
  if (payload) return std::string(*payload);
  // A deadline the engine (or the queue) saw pass carries no reason of its
  // own: it is the deadline's, as admission's refusal by one is.
  if (status.code() == absl::StatusCode::kDeadlineExceeded) return "deadline";
  return std::string();
}

std::optional<std::chrono::milliseconds> RetryPushback(const absl::Status& status) {
  const auto payload = status.GetPayload(kPushbackPayload);
  int64_t ms = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &ms) || ms < 0) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

Admission::Admission(std::string model_name, AdmissionLimits limits)
    : model_name_(std::move(model_name)), limits_(limits) {}

absl::StatusOr<std::unique_ptr<Admission::Ticket>> Admission::Admit(int64_t prompt_tokens) {
  if (prompt_tokens > limits_.max_queued_prompt_tokens) {
    // Waiting never helps this one, so it is not RESOURCE_EXHAUSTED.
    return absl::InvalidArgumentError(absl::StrFormat(
        "the prompt of %d tokens exceeds model \"%s\"'s queue limit of %d prompt tokens",
        prompt_tokens, model_name_, limits_.max_queued_prompt_tokens));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const std::chrono::milliseconds pushback(limits_.retry_pushback_ms);
  if (queued_requests_ >= limits_.max_queued_requests) {
    return RetryLater("model_queue", pushback,
                      absl::StrFormat("model \"%s\" has %d requests queued, the limit "
                                      "(max_queued_requests = %d); retry later",
                                      model_name_, queued_requests_, limits_.max_queued_requests));
  }
  if (queued_prompt_tokens_ + prompt_tokens > limits_.max_queued_prompt_tokens) {
    return RetryLater(
        "model_queue", pushback,
        absl::StrFormat("model \"%s\" has %d prompt tokens queued; %d more would pass "
                        "the limit (max_queued_prompt_tokens = %d); retry later",
                        model_name_, queued_prompt_tokens_, prompt_tokens,
                        limits_.max_queued_prompt_tokens));
  }
  ++queued_requests_;
  queued_prompt_tokens_ += prompt_tokens;
  ++in_flight_;
  return std::unique_ptr<Ticket>(new Ticket(prompt_tokens));
}

absl::Status Admission::CheckFurtherChoices(int32_t further, int64_t prompt_tokens) const {
  if (further > limits_.max_queued_requests) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d further choices wait together in model \"%s\"'s queue, which holds %d requests "
        "(max_queued_requests)",
        further, model_name_, limits_.max_queued_requests));
  }
  if (further * prompt_tokens > limits_.max_queued_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d further choices of a %d-token prompt wait together in model \"%s\"'s queue, "
        "which holds %d prompt tokens (max_queued_prompt_tokens)",
        further, prompt_tokens, model_name_, limits_.max_queued_prompt_tokens));
  }
  return absl::OkStatus();
}

void Admission::Refused(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket.finished_) return;
  LeaveQueueLocked(ticket);
  ticket.finished_ = true;
  --in_flight_;
}

void Admission::Submitted(Ticket& ticket, runtime::RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket.finished_) return;
  ticket.id_ = id;
  in_flight_ids_.insert(id);
}

void Admission::Scheduled(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  LeaveQueueLocked(ticket);
}

void Admission::Finished(Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket.finished_) return;
  LeaveQueueLocked(ticket);
  ticket.finished_ = true;
  if (ticket.id_ >= 0) in_flight_ids_.erase(ticket.id_);
  --in_flight_;
  last_finished_ = runtime::Clock::now();
}

std::optional<runtime::Clock::time_point> Admission::last_finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_finished_;
}

void Admission::LeaveQueueLocked(Ticket& ticket) {
  if (!ticket.queued_) return;
  ticket.queued_ = false;
  --queued_requests_;
  queued_prompt_tokens_ -= ticket.prompt_tokens_;
}

std::vector<runtime::RequestId> Admission::InFlightIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {in_flight_ids_.begin(), in_flight_ids_.end()};
}

int32_t Admission::queued_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_requests_;
}

int64_t Admission::queued_prompt_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_prompt_tokens_;
}

int32_t Admission::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

}  // namespace cohost::scheduler
