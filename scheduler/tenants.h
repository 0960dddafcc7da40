// Tenants' weights and budgets, server-wide (across every model): how many
// streams a tenant may have open, how many of its prompt tokens may wait
// unscheduled, and how many tokens (prompt and generated) it may use per
// minute, as a token bucket that holds a minute's worth and refills
// continuously. A request over a budget is refused at once with
// RESOURCE_EXHAUSTED and a pushback (RetryLater), under one short lock:
// one tenant's refusal never delays another's request. The weight is the
// tenant's share of a busy engine's tokens (runtime::FairShare). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "runtime/batching/request.h"

namespace cohost::scheduler {

struct TenantLimits {
  double weight = 1;              // > 0
  int64_t tokens_per_minute = 0;  // prompt + generated; 0: no limit
  // Requests in flight, each until the server has handed all its output to
  // the transport (a finished one whose output waits on a slow client still
  // counts); 0: no limit.
  int32_t max_streams = 0;
  int64_t max_queued_prompt_tokens = 0;  // admitted, not yet scheduled; 0: no limit
  // The highest priority its requests may ask for: a client may lower its
  // requests' priority, but starting ahead of the model's other waiting
  // requests is the operator's to grant.
  int32_t max_priority = 0;

  bool has_budget() const {
    return tokens_per_minute > 0 || max_streams > 0 || max_queued_prompt_tokens > 0;
  }
  bool operator==(const TenantLimits&) const = default;
};

// What each tenant gets: its own entry by name, else the defaults (which
// also cover requests without a tenant, named "").
struct TenantPolicy {
  TenantLimits defaults;
  std::map<std::string, TenantLimits> named;

  const TenantLimits& For(const std::string& tenant) const;
  bool operator==(const TenantPolicy&) const = default;
};

class TenantBook {
 public:
  // A refusal over a stream or queue budget says to retry after this long
  // (nothing tells when a stream ends); a rate refusal computes its own.
  static constexpr int64_t kBudgetPushbackMs = 1000;
  // Tenants with budgets tracked at once; past it, tenants at rest (nothing
  // open or queued, bucket full) are forgotten, which loses nothing.
  static constexpr size_t kMaxTracked = 4096;

  // One admitted request's place in its tenant's books; changed only through
  // the book that issued it. Its stream is open until it is Refused or
  // destroyed (after Finished: while its output is still being written, its
  // front door keeps it, runtime::TokenSink::KeepOpen).
  class Ticket {
   public:
    Ticket() = default;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class TenantBook;
    struct State;
    std::shared_ptr<State> state_;  // null: the tenant has no budget
    int64_t prompt_tokens_ = 0;
    bool queued_ = true;
    bool finished_ = false;  // the engine is done with it (or it was refused)
    bool closed_ = false;    // its stream was closed (Refused)
  };

  explicit TenantBook(TenantPolicy policy = {});
  ~TenantBook();

  // Counts a request of `prompt_tokens` for `tenant` against its budgets, or
  // refuses it (changing nothing): RESOURCE_EXHAUSTED with a pushback, or
  // INVALID_ARGUMENT for a prompt that alone exceeds a budget (waiting never
  // helps).
  absl::StatusOr<std::unique_ptr<Ticket>> Admit(const std::string& tenant, int64_t prompt_tokens,
                                                runtime::Clock::time_point now);
  // PERMISSION_DENIED when `priority` is above the tenant's max_priority.
  absl::Status CheckPriority(const std::string& tenant, int32_t priority) const;
  // INVALID_ARGUMENT when a call of `choices` requests (HTTP's n) could never
  // be admitted whole: more choices than the tenant's max_streams (each is a
  // request in flight). Its prompt is charged once, with the first choice
  // (Router::Submit's further_choice), whose own Admit checks it against the
  // budgets. Waiting never helps.
  absl::Status CheckChoices(const std::string& tenant, int32_t choices) const;
  // Undoes Admit, tokens included: the request never ran.
  void Refused(Ticket& ticket);
  // First scheduled: its prompt leaves the tenant's queue.
  void Scheduled(Ticket& ticket);
  // `tokens` generated: charged to the tenant's rate.
  void Generated(Ticket& ticket, int64_t tokens);
  // Finished, whatever the way: its prompt is no longer queued (its stream
  // closes when the ticket goes).
  void Finished(Ticket& ticket);

  double Weight(const std::string& tenant) const { return policy_.For(tenant).weight; }
  const TenantPolicy& policy() const { return policy_; }
  size_t tracked() const;

 private:
  using State = Ticket::State;
  // Drops tenants at rest; under mu_.
  void PruneLocked(runtime::Clock::time_point now);
  // Ends a live ticket's queued prompt; under mu_.
  void FinishLocked(Ticket& ticket, State& s);

  const TenantPolicy policy_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<State>> states_;  // guarded by mu_
};

}  // namespace cohost::scheduler
