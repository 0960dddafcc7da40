// Iteration-level scheduling: each step, under a token budget and a maximum
// number of sequences, running sequences first (decodes take one token, a
// sequence mid-prefill takes its next chunk), then waiting sequences in
// priority order (higher first; preempted ones first). Within a priority,
// tenants share by tokens (FairShare): the waiting sequence of the tenant with
// the fewest virtual tokens goes first (ties: the tenant with fewer running
// sequences, then arrival). The tenant so ranked first among those with
// prefill to do (running or waiting) is owed the step: the prefill chunks of
// tenants ranked behind it wait, but for one token of the oldest running
// sequence (which must progress), and so do new sequences of theirs that
// already run some; a step that starts a quiet tenant's prompt is then about
// that prompt's size, not one tenant's long prompts padded to the budget.
// With one tenant this is FIFO. The result is
// {sequence -> new tokens this step}; there are no separate prefill and decode modes. When a
// running sequence cannot get a block, the most recently started running sequence is preempted
// (recompute): its blocks are freed and it goes back to the front of the queue, keeping its tokens.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "runtime/batching/fair_share.h"
#include "runtime/batching/kv_cache_manager.h"
#include "runtime/batching/sequence.h"
#include "runtime/batching/step_scheduler_config.h"

namespace cohost::runtime {

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_new_tokens = 0;  // tokens [num_computed_tokens, + num_new_tokens) this step
  bool samples = false;        // reaches the end of its tokens: sample a token after the step
};

struct StepPlan {
  std::vector<ScheduledSeq> scheduled;  // running ones first, then newly admitted
  std::vector<Sequence*> preempted;     // preempted during this planning
  int32_t num_tokens = 0;
  bool empty() const { return scheduled.empty(); }
};

class StepScheduler {
 public:
  // `shared`: the tenants' virtual tokens, when shared with other schedulers
  // (a device's engines; must outlive this one); null: its own.
  StepScheduler(const StepSchedulerConfig& config, KvCacheManager* kv, FairShare* shared = nullptr);

  // Queues a new sequence (status kWaiting) behind the preempted ones and
  // every waiting one of at least its priority.
  void Add(Sequence* seq);

  // Plans one step and allocates its blocks. Sequences in the plan have their
  // block tables ready; num_computed_tokens is not advanced until Commit.
  // `max_step_tokens` > 0 caps this step's new tokens below the configured
  // budget (a device executor bounding a step's duration); every running
  // sequence still gets room for one token, so decodes are never starved, and
  // a tenant's lone request owed service takes its chunk whole, as alone.
  StepPlan Schedule(int32_t max_step_tokens = 0);

  // After the forward pass: advances num_computed_tokens of every scheduled
  // sequence and caches its newly full blocks. Sampled tokens must already be
  // appended to seq->tokens by the caller for sequences with samples == true.
  void Commit(const StepPlan& plan);

  // Preempts (recompute) every running sequence holding a block for which
  // `given_back` is true, newest first: how an engine gives back the KV groups
  // another model needs. Returns how many it preempted.
  int32_t PreemptHolding(absl::FunctionRef<bool(BlockId)> given_back);

  // Removes a sequence in any state (waiting, running) and frees its blocks.
  // Used for finish and abort alike; status becomes kFinished.
  void Remove(Sequence* seq);

  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const std::vector<Sequence*>& running() const { return running_; }
  const FairShare& fair_share() const { return *fair_; }

 private:
  // Frees running_[index]'s blocks and puts it at the front of the queue.
  void Preempt(size_t index, StepPlan* plan);
  // The waiting sequence to admit next: the front when it was preempted, else
  // the fairest among the front's priority.
  std::deque<Sequence*>::iterator NextWaiting();
  // Without chunked prefill: the most tokens a running remainder or the next
  // waiting sequence must compute in one step (0: none).
  int32_t NextWhole();
  // Orders tenants for service: fewer virtual tokens, then fewer running.
  struct TenantRank {
    double counter;
    int32_t running;
    bool operator<(const TenantRank& o) const {
      return counter != o.counter ? counter < o.counter : running < o.running;
    }
  };
  TenantRank RankOf(uint64_t tenant) const;
  // One sequence's tokens in one step at most.
  int32_t ChunkCap() const { return std::max<int32_t>(config_.max_prefill_chunk, 1); }
  // The sequence owed service this step, while several tenants are live:
  // among running sequences mid-prefill (not resumed) and the fairest waiting
  // one, that of the best-ranked tenant.
  struct Owed {
    uint64_t tenant;
    TenantRank rank;
    int32_t chunk;  // its next chunk's tokens (0: a waiting one that must fit whole)
    bool fits;      // the free blocks hold that chunk now
    bool lone;      // its tenant runs nothing else
  };
  std::optional<Owed> FindOwed();
  // Whether `tenant`'s prefill waits this step for the owed sequence's.
  bool GivesWay(const std::optional<Owed>& owed, uint64_t tenant) const;
  // What running prefills leave this step for the next waiting sequence:
  // its prompt where that is short (IsShortPrompt at `budget`, its cached
  // prefix counted: that may be evicted before it is admitted), it is new
  // (not preempted), admissible this step (not giving way to an owed
  // tenant) and was not left room in the step before (it then waits for
  // blocks, or for budget others took); else none.
  // So a short prompt queued behind a long one's prefill starts in the next
  // step instead of after the whole long prompt. Only long prefills of at
  // most its priority leave it room, and each keeps at least half of its own.
  struct ShortHead {
    int32_t tokens = 0;
    int32_t priority = 0;
  };
  ShortHead ShortPromptReserve(const std::optional<Owed>& owed, int32_t budget);

  StepSchedulerConfig config_;
  KvCacheManager* kv_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // in start order
  int64_t next_start_order_ = 0;
  int64_t num_preemptions_ = 0;
  FairShare own_fair_;
  FairShare* fair_;  // &own_fair_ or the shared one
  // The last sequence ShortPromptReserve left room for.
  std::optional<RequestId> reserved_for_;
  // Running sequences per tenant, rebuilt by each Schedule.
  absl::flat_hash_map<uint64_t, int32_t> running_by_tenant_;
};

}  // namespace cohost::runtime
