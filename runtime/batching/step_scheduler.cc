// The step scheduler: one plan per step under a token budget and a sequence
// cap, running sequences first (a long prefill leaving room for short ones,
// running or at the head of the queue), then admission (by priority, then fair
// share between tenants, then FIFO), with preemption by recompute when a
// running sequence cannot get a block.
//
// Why this cannot deadlock (every sequence fits the empty pool; the Engine
// rejects the others at Submit):
//  * A sequence that was preempted (resumed_without_progress) is never chosen
//    as a victim until it samples again. So that it never needs a victim
//    either, it is readmitted only when blocks for ALL its tokens fit, not just
//    for its first chunk: until it samples, its later chunks need no new block,
//    and it samples after at most ceil(tokens / chunk) steps in which it gets
//    budget.
//  * Hence an allocation that fails in the running loop belongs to a sequence
//    that is itself an eligible victim: the newest eligible sequence is
//    preempted, at worst the failing one itself, which then waits at the front
//    of the queue.
//  * Except the oldest running sequence: it never preempts itself (vLLM only
//    does when it is the last one running, which cannot happen when every
//    sequence fits the pool). Nothing is scheduled ahead of it, so it can
//    preempt every newer sequence but the resumed ones, and those sample within
//    a few steps (the oldest, when blocked, leaves them the budget) and become
//    eligible. So the oldest running sequence is never preempted, always
//    progresses and finishes; then the next oldest is in that position.
//  * When nothing runs the pool is empty and the head of the queue fits.
//    Admission is skipped in a step that preempted (vLLM's rule). With the
//    reservation above it could not readmit the victim anyway: the victim is
//    at the front and needs at least the blocks it gave up, part of which its
//    preemptor just took.
//  * Fair sharing between tenants changes which waiting sequence is admitted
//    and holds back prefill chunks (and admissions) of tenants ranked behind
//    the one owed service, but it never stops the oldest (it still takes at
//    least one token a step) nor a resumed sequence (it must sample to become
//    a victim again), so the argument above stands. tests/runtime/batching:
//    RandomWorkloadsAlwaysDrain runs it with three tenants of different weights.
//  * On a device's shared KV pool, "the pool" above is what the engine can
//    grow to: its promise, which the engine holding the device's oldest
//    request always reaches by preempting younger work in the other engines
//    (wound-wait, runtime/engine/kv_budget.h). That engine then runs as if
//    alone; another may wait for memory, or have sequences preempted from
//    outside (even its oldest, and resumed ones), but only for older work or
//    for another model below its floor.
//  * The room a prefill chunk leaves for a short prompt only shrinks chunks
//    (to no less than half their room, and one token), never skips one, and
//    is never taken from a resumed sequence, so the argument above stands.
//  * Without chunked prefill a sequence is admitted only whole, so one whose
//    tokens exceed min(max_tokens_per_step, max_prefill_chunk) would wait at
//    the head forever. A resumed sequence needs prompt + generated tokens, so
//    the Engine must reject prompt + max_tokens - 1 above that bound at Submit
//    when chunking is off (as vLLM requires max_num_batched_tokens >=
//    max_model_len).

#include "runtime/batching/step_scheduler.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <optional>
#include <vector>

namespace cohost::runtime {
namespace {

bool IsScheduled(const StepPlan& plan, const Sequence* seq) {
  return std::any_of(plan.scheduled.begin(), plan.scheduled.end(),
                     [seq](const ScheduledSeq& s) { return s.seq == seq; });
}

}  // namespace

StepScheduler::StepScheduler(const StepSchedulerConfig& config, KvCacheManager* kv,
                             FairShare* shared)
    : config_(config), kv_(kv), fair_(shared != nullptr ? shared : &own_fair_) {}

void StepScheduler::Add(Sequence* seq) {
  seq->status = SeqStatus::kWaiting;
  fair_->Join(seq->tenant_key);
  // Behind every sequence of at least its priority, and behind every
  // preempted one (they ran before: they resume first); FIFO within a level.
  // The queue is preempted ones, then descending priorities: the common case
  // (nothing queued of a lower priority) is the back.
  if (waiting_.empty() || waiting_.back()->num_preemptions > 0 ||
      waiting_.back()->priority >= seq->priority) {
    waiting_.push_back(seq);
    return;
  }
  auto it = std::find_if(waiting_.begin(), waiting_.end(), [seq](const Sequence* w) {
    return w->num_preemptions == 0 && w->priority < seq->priority;
  });
  waiting_.insert(it, seq);
}

// Preempted sequences go to the front of the queue; victims are chosen newest
// first, so pushing each to the front leaves the earliest started of them first.
void StepScheduler::Preempt(size_t index, StepPlan* plan) {
  Sequence* victim = running_[index];
  kv_->Free(*victim);
  victim->status = SeqStatus::kWaiting;
  victim->num_preemptions++;
  victim->resumed_without_progress = true;
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  waiting_.push_front(victim);
  if (plan != nullptr) plan->preempted.push_back(victim);
  num_preemptions_++;
}

int32_t StepScheduler::PreemptHolding(absl::FunctionRef<bool(BlockId)> given_back) {
  int32_t n = 0;
  for (size_t i = running_.size(); i-- > 0;) {
    const std::vector<BlockId>& table = running_[i]->block_table;
    if (std::any_of(table.begin(), table.end(), given_back)) {
      Preempt(i, nullptr);
      ++n;
    }
  }
  return n;
}

StepScheduler::TenantRank StepScheduler::RankOf(uint64_t tenant) const {
  auto it = running_by_tenant_.find(tenant);
  return {fair_->Counter(tenant), it == running_by_tenant_.end() ? 0 : it->second};
}

std::deque<Sequence*>::iterator StepScheduler::NextWaiting() {
  auto best = waiting_.begin();
  // One live tenant (the common case): its own order, FIFO, without a scan.
  if (fair_->num_active() <= 1) return best;
  if (best == waiting_.end() || (*best)->num_preemptions > 0) return best;
  TenantRank best_rank = RankOf((*best)->tenant_key);
  for (auto it = std::next(best); it != waiting_.end(); ++it) {
    // The queue is ordered by priority (preempted ones lead): past the
    // front's priority nothing else competes.
    if ((*it)->priority != (*best)->priority || (*it)->num_preemptions > 0) break;
    if ((*it)->tenant_key == (*best)->tenant_key) continue;  // FIFO within a tenant
    const TenantRank rank = RankOf((*it)->tenant_key);
    if (rank < best_rank) {
      best = it;
      best_rank = rank;
    }
  }
  return best;
}

std::optional<StepScheduler::Owed> StepScheduler::FindOwed() {
  if (fair_->num_active() <= 1) return std::nullopt;
  const int32_t chunk_cap = ChunkCap();
  std::optional<Owed> owed;
  auto consider = [&](const Sequence* seq, int32_t chunk) {
    const TenantRank rank = RankOf(seq->tenant_key);
    if (owed && !(rank < owed->rank)) return;
    // rank.running counts its tenant's running sequences, itself included.
    const int32_t others = rank.running - (seq->status == SeqStatus::kRunning ? 1 : 0);
    owed = Owed{seq->tenant_key, rank, chunk,
                kv_->BlocksNeeded(*seq, std::max(chunk, 1)) <= kv_->num_free_blocks(), others == 0};
  };
  // Running sequences mid-prefill (a resumed one is never held back, so it is
  // not owed either: it goes in start order), then the fairest waiting one.
  for (const Sequence* seq : running_) {
    const int32_t wanted = seq->num_uncomputed();
    if (wanted > 1 && !seq->resumed_without_progress) consider(seq, std::min(wanted, chunk_cap));
  }
  if (static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    auto next = NextWaiting();
    if (next != waiting_.end() && (*next)->num_preemptions == 0) {
      consider(*next, config_.chunked_prefill ? std::min((*next)->num_uncomputed(), chunk_cap) : 0);
    }
  }
  return owed;
}

bool StepScheduler::GivesWay(const std::optional<Owed>& owed, uint64_t tenant) const {
  return owed && tenant != owed->tenant && owed->rank < RankOf(tenant);
}

StepScheduler::ShortHead StepScheduler::ShortPromptReserve(const std::optional<Owed>& owed,
                                                           int32_t budget) {
  if (waiting_.empty() || static_cast<int32_t>(running_.size()) >= config_.max_num_seqs) return {};
  Sequence* seq = *NextWaiting();
  // A preempted sequence reserves blocks for all its tokens (see the top of
  // this file); one whose tenant gives way to the owed one is not served
  // before it.
  if (seq->num_preemptions > 0 || GivesWay(owed, seq->tenant_key)) return {};
  // Room was left for it last step and it still waits (its blocks could not
  // be had, or the budget went to others): the prefills are not held back
  // for it again. (The free blocks say too little to judge this before:
  // a shared pool grows as Allocate asks.)
  if (reserved_for_ == seq->id) return {};
  // Its whole prompt, cached prefix included: the running prefills'
  // allocations this step may evict that prefix, and a prompt admitted in
  // part would then wait behind them as a running prefill.
  const int32_t prompt = seq->num_uncomputed();
  if (!IsShortPrompt(prompt, budget, config_)) return {};
  reserved_for_ = seq->id;
  return {prompt, seq->priority};
}

int32_t StepScheduler::NextWhole() {
  int32_t most = 0;
  for (const Sequence* seq : running_) {
    if (seq->num_uncomputed() > 1) most = std::max(most, seq->num_uncomputed());
  }
  if (static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    const auto next = NextWaiting();
    if (next != waiting_.end()) most = std::max(most, (*next)->num_uncomputed());
  }
  return most;
}

StepPlan StepScheduler::Schedule(int32_t max_step_tokens) {
  StepPlan plan;
  // What RankOf reads; only ranking between tenants needs it.
  running_by_tenant_.clear();
  if (fair_->num_active() > 1) {
    for (const Sequence* seq : running_) ++running_by_tenant_[seq->tenant_key];
  }
  // The tenant owed service this step; tenants ranked behind it give way.
  const std::optional<Owed> owed = FindOwed();
  int32_t budget = config_.max_tokens_per_step;
  if (max_step_tokens > 0) {
    const auto running = static_cast<int32_t>(running_.size());
    int32_t cap = std::max(max_step_tokens, running);
    // The lone request of a tenant owed service takes its chunk whole, as it
    // would alone, beside every running sequence's token.
    if (owed && owed->lone) cap = std::max(cap, owed->chunk + running);
    // Without chunking a prompt runs whole or not at all: a cap below the
    // next one's size would hold it back for as long as anything decodes.
    if (!config_.chunked_prefill) cap = std::max(cap, NextWhole() + running);
    budget = std::min(budget, cap);
  }
  const int32_t chunk_cap = ChunkCap();
  // Short prefills go before long ones: a long prefill leaves room (up to
  // half its own) for the short prefills running after it and for a short
  // prompt at the head of the queue (taken by stage 2 below), so that a
  // short prompt's first token does not wait for a long one's whole prefill.
  const ShortHead short_head = ShortPromptReserve(owed, budget);
  // Judged against the whole step's budget, not what is left of it.
  const auto short_prefill = [this, step_budget = budget](const Sequence& s) {
    return s.num_uncomputed() > 1 && !s.resumed_without_progress &&
           IsShortPrompt(s.num_uncomputed(), step_budget, config_);
  };
  // The short prefills running after running_[i], of at least `priority`.
  const auto short_after = [&](size_t i, int32_t priority) {
    int32_t tokens = 0;
    for (size_t j = i + 1; j < running_.size(); ++j) {
      if (running_[j]->priority >= priority && short_prefill(*running_[j])) {
        tokens += running_[j]->num_uncomputed();
      }
    }
    return tokens;
  };

  auto preempt = [&](size_t index) { Preempt(index, &plan); };

  // 1. Running sequences, oldest first.
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    Sequence* seq = running_[i];
    const int32_t wanted = seq->num_uncomputed();
    const bool prefill = wanted > 1 && !seq->resumed_without_progress;
    // A prefill chunk (more than a decode's one token) of a tenant ranked
    // behind the owed one waits a step. The oldest's, which must always
    // progress, takes one token, so that the step is about the owed chunk's
    // own size, as when its tenant is alone; when the free blocks cannot hold
    // that chunk, it takes the budget beyond it instead. Never a resumed
    // sequence's: it cannot be a victim until it samples, so holding it back
    // could leave the oldest without one (see the top of this file).
    // Room for one token is kept for each running sequence after this one,
    // so that a long prefill of an older sequence never starves the decodes
    // behind it (the budget is at least the running count).
    // A long prefill chunk (not a resumed sequence's, nor the owed tenant's)
    // also leaves room for the short prefills after it and the short prompt
    // at the head of the queue, those of at least its priority, keeping at
    // least half of its own.
    const auto after = static_cast<int32_t>(running_.size() - i - 1);
    int32_t room = std::max(1, budget - after);
    if (prefill && GivesWay(owed, seq->tenant_key)) {
      if (i > 0) {
        ++i;
        continue;
      }
      room = owed->fits ? 1 : std::max(1, std::min(room, budget - owed->chunk));
    } else if (prefill && !short_prefill(*seq) && !(owed && owed->tenant == seq->tenant_key)) {
      const int32_t keep = short_after(i, seq->priority) +
                           (seq->priority <= short_head.priority ? short_head.tokens : 0);
      room = std::max(1, room - std::min(keep, room / 2));
    }
    const int32_t num_new = std::min({wanted, chunk_cap, room});
    // Nothing to compute (a caller that has not appended a sampled token yet),
    // or, without chunking, a remainder that does not fit whole.
    if (num_new <= 0 || (!config_.chunked_prefill && num_new < wanted)) {
      ++i;
      continue;
    }
    bool allocated = false;
    bool self_preempted = false;
    while (!(allocated = kv_->Allocate(*seq, num_new, {}))) {
      // The newest running sequence that may be preempted: not resumed without
      // progress (no thrashing), not already in this step's plan.
      // The oldest running sequence is never preempted, not even by itself;
      // see the top of this file.
      size_t victim = running_.size();
      for (size_t j = running_.size(); j-- > 0;) {
        Sequence* candidate = running_[j];
        if (candidate->resumed_without_progress) continue;
        if (j < i && IsScheduled(plan, candidate)) continue;
        if (j == 0) continue;
        victim = j;
        break;
      }
      if (victim == running_.size()) break;
      preempt(victim);
      if (victim == i) {
        self_preempted = true;
        break;
      }
      if (victim < i) --i;  // an older, skipped sequence left the list
    }
    if (self_preempted) continue;  // running_[i] is now the next sequence
    if (!allocated) {
      // No eligible victim: the sequence keeps its blocks and waits a step.
      ++i;
      continue;
    }
    plan.scheduled.push_back(
        {seq, num_new, seq->num_computed_tokens + num_new == seq->num_tokens()});
    plan.num_tokens += num_new;
    budget -= num_new;
    ++i;
  }

  // 2. Waiting sequences in queue order, only if nothing was preempted (the
  // pool is short; admitting now would only feed the next preemption). Room
  // left for the head then was not its chance: it may have it again.
  if (!plan.preempted.empty()) {
    reserved_for_.reset();
    return plan;
  }
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    const auto next = NextWaiting();
    Sequence* seq = *next;
    // A tenant ranked behind the owed one that is already served waits a
    // step for more (NextWaiting ranks the rest behind it).
    if (GivesWay(owed, seq->tenant_key) && running_by_tenant_[seq->tenant_key] > 0) break;
    std::vector<BlockId> cached;
    if (seq->block_table.empty()) cached = kv_->FindCachedPrefix(*seq);
    const int32_t cached_tokens = static_cast<int32_t>(cached.size()) * kv_->block_size();
    const int32_t remaining = seq->num_tokens() - seq->num_computed_tokens - cached_tokens;
    const int32_t num_new = std::min({remaining, chunk_cap, budget});
    // A head (the fairest) that cannot start now blocks everyone behind it.
    if (num_new <= 0 || (!config_.chunked_prefill && num_new < remaining)) break;
    // A resumed sequence reserves blocks for all its tokens (see the top of
    // this file); a new one needs only its first chunk's.
    const int32_t num_alloc = seq->resumed_without_progress ? remaining : num_new;
    if (!kv_->Allocate(*seq, num_alloc, cached)) break;
    waiting_.erase(next);
    ++running_by_tenant_[seq->tenant_key];
    seq->status = SeqStatus::kRunning;
    seq->start_order = next_start_order_++;
    running_.push_back(seq);
    plan.scheduled.push_back(
        {seq, num_new, seq->num_computed_tokens + num_new == seq->num_tokens()});
    plan.num_tokens += num_new;
    budget -= num_new;
  }
  return plan;
}

void StepScheduler::Commit(const StepPlan& plan) {
  for (const ScheduledSeq& s : plan.scheduled) {
    Sequence* seq = s.seq;
    // Removed (finished or aborted) between Schedule and Commit: its blocks
    // are already gone.
    if (seq->status != SeqStatus::kRunning) continue;
    seq->num_computed_tokens += s.num_new_tokens;
    fair_->Charge(seq->tenant_key, s.num_new_tokens, seq->tenant_weight);
    kv_->CacheFullBlocks(*seq);
    if (s.samples) seq->resumed_without_progress = false;
  }
}

void StepScheduler::Remove(Sequence* seq) {
  if (seq->status == SeqStatus::kFinished) return;
  fair_->Leave(seq->tenant_key);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), seq); it != waiting_.end()) {
    waiting_.erase(it);
  }
  if (auto it = std::find(running_.begin(), running_.end(), seq); it != running_.end()) {
    running_.erase(it);
  }
  kv_->Free(*seq);
  seq->status = SeqStatus::kFinished;
}

}  // namespace cohost::runtime
