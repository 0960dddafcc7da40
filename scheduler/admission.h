// Admission control in front of one model's engine: a bounded queue, in
// requests and in prompt tokens not yet scheduled, and the set of admitted
// requests still in flight (so that unloading and draining can reach them).
// All of it is guarded by one lock this class owns. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "runtime/batching/request.h"

namespace cohost::scheduler {

struct AdmissionLimits {
  int32_t max_queued_requests = 256;           // per model, not yet scheduled
  int64_t max_queued_prompt_tokens = 1 << 20;  // per model, prompts not yet scheduled
  int32_t retry_pushback_ms = 500;             // what clients are told to wait
  // After a load that failed for its file or its model (not for a full
  // device, RESOURCE_EXHAUSTED), a model's requests are refused
  // (UNAVAILABLE, with the time left as pushback) for this long, doubled for
  // each failure in a row up to 64 times, before one of them tries the load
  // again: a missing or corrupt file is not read again for every request.
  int32_t failed_load_retry_ms = 5000;
};

// Admission's refusals carry why (`reason`, for metrics: "model_queue",
// "load_failed", "ttft_target", "deadline", "tenant_streams",
// "tenant_queued_tokens", "tenant_rate", "tenant_limit", "tenant_priority") and, when retrying
// later may cure them, when to retry (read by both front doors: the gRPC `grpc-retry-pushback-ms`
// trailer, HTTP's Retry-After).
//
// RESOURCE_EXHAUSTED saying `message`, with its reason and pushback.
absl::Status RetryLater(std::string_view reason, std::chrono::milliseconds pushback,
                        std::string_view message);
// Any other refusal (`status` not OK), with its reason.
absl::Status WithRefusalReason(absl::Status status, std::string_view reason);
// `status` (not OK) telling the client when to retry.
absl::Status WithPushback(absl::Status status, std::chrono::milliseconds pushback);
// What a status carries: the pushback, if any; the reason, "" if none.
std::optional<std::chrono::milliseconds> RetryPushback(const absl::Status& status);
// What a front door tells the client to wait, if anything: an overload
// (RESOURCE_EXHAUSTED) always says, with `fallback` when it carries no
// pushback; any other refusal only when it carries one (a model whose load
// failed).
std::optional<std::chrono::milliseconds> PushbackToSend(const absl::Status& status,
                                                        std::chrono::milliseconds fallback);
// The reason a refusal carries; "deadline" for a DEADLINE_EXCEEDED without
// one (the engine's or the queue's); else empty.
std::string RefusalReason(const absl::Status& status);

class Admission {
 public:
  // One admitted request's place in the books. Its state belongs to the
  // Admission that issued it and changes only through it, under its lock.
  class Ticket {
   public:
    int64_t prompt_tokens() const { return prompt_tokens_; }

   private:
    friend class Admission;
    explicit Ticket(int64_t prompt_tokens) : prompt_tokens_(prompt_tokens) {}
    const int64_t prompt_tokens_;
    bool queued_ = true;
    bool finished_ = false;
    runtime::RequestId id_ = -1;  // set by Submitted, unless it finished first
  };

  // `model_name` appears in refusals.
  Admission(std::string model_name, AdmissionLimits limits);

  // Counts a request of `prompt_tokens` as queued and in flight, or refuses it:
  // RESOURCE_EXHAUSTED when the queue is full (retrying later may help; it
  // carries limits().retry_pushback_ms), and
  // INVALID_ARGUMENT when the prompt alone is over the queue's token bound
  // (waiting never helps). A refusal changes nothing.
  absl::StatusOr<std::unique_ptr<Ticket>> Admit(int64_t prompt_tokens);
  // A call's further choices (HTTP's n), each admitted as a request of
  // `prompt_tokens` once its first runs, all at once: INVALID_ARGUMENT when
  // the queue could never hold them together (more of them than
  // max_queued_requests, or their prompts past max_queued_prompt_tokens), so
  // that the call is refused before its first runs, not with a 429 that no
  // retry could turn.
  absl::Status CheckFurtherChoices(int32_t further, int64_t prompt_tokens) const;
  // The engine refused an admitted request: undoes Admit.
  void Refused(Ticket& ticket);
  // The engine took it under `id`; the request may already have finished.
  void Submitted(Ticket& ticket, runtime::RequestId id);
  // First scheduled: it leaves the queue (once; later calls do nothing).
  void Scheduled(Ticket& ticket);
  // Finished, whether scheduled or not: it leaves the queue and the flight.
  void Finished(Ticket& ticket);

  // Ids of requests submitted to the engine and not yet finished.
  std::vector<runtime::RequestId> InFlightIds() const;
  int32_t queued_requests() const;
  int64_t queued_prompt_tokens() const;
  int32_t in_flight() const;
  // When its last request finished (nullopt: none has): the model's
  // keep-alive counts from the later of this and the last submit.
  std::optional<runtime::Clock::time_point> last_finished() const;
  const AdmissionLimits& limits() const { return limits_; }

 private:
  void LeaveQueueLocked(Ticket& ticket);

  const std::string model_name_;
  const AdmissionLimits limits_;
  mutable std::mutex mu_;
  int32_t queued_requests_ = 0;                              // guarded by mu_
  int64_t queued_prompt_tokens_ = 0;                         // guarded by mu_
  int32_t in_flight_ = 0;                                    // guarded by mu_
  absl::flat_hash_set<runtime::RequestId> in_flight_ids_;    // guarded by mu_
  std::optional<runtime::Clock::time_point> last_finished_;  // guarded by mu_
};

}  // namespace cohost::scheduler
