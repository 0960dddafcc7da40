// A deterministic simulation harness for StepScheduler over the real
// KvCacheManager: creates sequences, runs Schedule -> fake sampling -> Commit ->
// finish, compares each step against a table row, and checks invariants.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/batching/kv_cache_manager.h"
#include "runtime/batching/step_scheduler.h"

namespace cohost::runtime::sched_sim {

constexpr int32_t kBs = 4;  // block size of every simulation

// Expected state after one step (schedule, sample, commit, finish).
struct Row {
  int step;
  std::vector<std::pair<int, int>> scheduled;  // (id, new tokens) in plan order
  std::vector<int> running;                    // after the step, in start order
  std::vector<int> waiting;                    // after the step, in queue order
  int blocks_used;                             // after the step
  std::vector<int> preempted = {};             // in this step, in preemption order
};

// What one step did, in the same shape as Row.
struct Observed {
  std::vector<std::pair<int, int>> scheduled;
  std::vector<int> running, waiting, preempted;
  int blocks_used = 0;
};

inline std::string Describe(const std::vector<std::pair<int, int>>& v) {
  std::ostringstream os;
  for (const auto& [id, n] : v) os << id << ":" << n << " ";
  return os.str();
}

class Sim {
 public:
  // `fair`: tenant counters shared with other Sims (a device's engines).
  Sim(const StepSchedulerConfig& config, int32_t usable_blocks, bool prefix_caching = false,
      FairShare* fair = nullptr)
      : config_(config),
        prefix_caching_(prefix_caching),
        kv_(usable_blocks + 1, kBs, prefix_caching),
        scheduler_(config, &kv_, fair) {
    EXPECT_EQ(kv_.num_usable_blocks(), usable_blocks);
  }

  // A sequence whose prompt shares no tokens with any other's.
  Sequence* Add(int id, int32_t prompt_len, int32_t max_tokens, int32_t priority = 0) {
    std::vector<int32_t> prompt(prompt_len);
    std::iota(prompt.begin(), prompt.end(), id * 1000);
    return AddPrompt(id, std::move(prompt), max_tokens, /*salt=*/0, priority);
  }

  // A sequence of `tenant` (its FairShare key), whose weight is `weight`.
  Sequence* AddForTenant(int id, int32_t prompt_len, int32_t max_tokens, uint64_t tenant,
                         double weight = 1) {
    std::vector<int32_t> prompt(prompt_len);
    std::iota(prompt.begin(), prompt.end(), id * 1000);
    return AddPrompt(id, std::move(prompt), max_tokens, /*salt=*/0, /*priority=*/0, tenant, weight);
  }

  Sequence* AddPrompt(int id, std::vector<int32_t> prompt, int32_t max_tokens, uint64_t salt = 0,
                      int32_t priority = 0, uint64_t tenant = 0, double weight = 1) {
    auto seq = std::make_unique<Sequence>();
    seq->id = id;
    seq->num_prompt_tokens = static_cast<int32_t>(prompt.size());
    seq->tokens = std::move(prompt);
    seq->max_tokens = max_tokens;
    seq->cache_salt = salt;
    seq->priority = priority;
    seq->tenant_key = tenant;
    seq->tenant_weight = weight;
    seq->arrival_order = next_arrival_++;
    prompts_[id] = seq->tokens;
    Sequence* raw = seq.get();
    seqs_[id] = std::move(seq);
    scheduler_.Add(raw);
    return raw;
  }

  // Aborts between steps, as the engine does; the blocks must come back at once.
  void Abort(int id) {
    Sequence& seq = *seqs_.at(id);
    const int held = static_cast<int>(seq.block_table.size());
    const int used_before = BlocksUsed();
    scheduler_.Remove(&seq);
    aborted_.insert(id);
    EXPECT_EQ(seq.status, SeqStatus::kFinished);
    EXPECT_TRUE(seq.block_table.empty()) << "seq " << id;
    // Without sharing, every block it held is free again.
    if (!prefix_caching_) {
      EXPECT_EQ(BlocksUsed(), used_before - held) << "seq " << id;
    }
    EXPECT_THAT(Ids(scheduler_.running()), ::testing::Not(::testing::Contains(id)));
    EXPECT_THAT(IdsOf(scheduler_.waiting()), ::testing::Not(::testing::Contains(id)));
  }

  Observed Step() {
    std::set<int> resumed_before;
    for (const auto& [id, seq] : seqs_) {
      if (seq->resumed_without_progress) resumed_before.insert(id);
    }
    const int64_t preemptions_before = scheduler_.num_preemptions();

    StepPlan plan = scheduler_.Schedule(step_cap_);
    Observed o;
    CheckPlan(plan);
    for (const ScheduledSeq& s : plan.scheduled) {
      o.scheduled.emplace_back(static_cast<int>(s.seq->id), s.num_new_tokens);
      cached_prompt_tokens_[static_cast<int>(s.seq->id)] = s.seq->num_cached_prompt_tokens;
    }
    for (const Sequence* p : plan.preempted) {
      o.preempted.push_back(static_cast<int>(p->id));
      // No thrashing: a sequence not yet progressed since its last preemption
      // is never a victim.
      EXPECT_FALSE(resumed_before.contains(static_cast<int>(p->id)))
          << "seq " << p->id << " preempted again before it sampled";
      EXPECT_TRUE(p->block_table.empty());
      EXPECT_EQ(p->num_computed_tokens, 0);
      EXPECT_TRUE(p->resumed_without_progress);
    }
    EXPECT_EQ(scheduler_.num_preemptions() - preemptions_before,
              static_cast<int64_t>(plan.preempted.size()));

    // The "model": every sampling sequence gets a token that names it and its
    // position, so kept and recomputed tokens can be checked at the end.
    for (const ScheduledSeq& s : plan.scheduled) {
      if (!s.samples) continue;
      const int32_t token = 500000 + static_cast<int32_t>(s.seq->id) * 100 + s.seq->num_generated();
      s.seq->tokens.push_back(token);
      sampled_[static_cast<int>(s.seq->id)].push_back(token);
    }
    std::map<const Sequence*, int32_t> computed_before;
    for (const ScheduledSeq& s : plan.scheduled)
      computed_before[s.seq] = s.seq->num_computed_tokens;
    scheduler_.Commit(plan);
    for (const ScheduledSeq& s : plan.scheduled) {
      if (s.seq->status != SeqStatus::kRunning) continue;
      EXPECT_EQ(s.seq->num_computed_tokens, computed_before.at(s.seq) + s.num_new_tokens);
      // A sampling sequence has computed everything but its new token.
      if (s.samples) {
        EXPECT_EQ(s.seq->num_uncomputed(), 1) << "seq " << s.seq->id;
      }
      if (s.samples) {
        EXPECT_FALSE(s.seq->resumed_without_progress);
      }
      if (s.samples && s.seq->num_generated() >= s.seq->max_tokens) scheduler_.Remove(s.seq);
    }
    CheckQueues();
    o.running = Ids(scheduler_.running());
    o.waiting = IdsOf(scheduler_.waiting());
    o.blocks_used = BlocksUsed();
    ++step_;
    return o;
  }

  // Runs the table from step 0; `before_step` adds arrivals and aborts. The
  // table must cover the whole simulation: after its last row nothing is left.
  void Run(
      const std::vector<Row>& table,
      const std::function<void(int step)>& before_step = [](int) {}) {
    for (const Row& row : table) {
      ASSERT_EQ(row.step, step_) << "table rows must be consecutive steps";
      before_step(row.step);
      ExpectStep(row);
    }
    ExpectDrained();
  }

  void ExpectStep(const Row& row) {
    ASSERT_EQ(row.step, step_);
    Observed o = Step();
    EXPECT_EQ(o.scheduled, row.scheduled)
        << "step " << row.step << ": got " << Describe(o.scheduled) << "want "
        << Describe(row.scheduled);
    EXPECT_EQ(o.running, row.running) << "step " << row.step << ": running";
    EXPECT_EQ(o.waiting, row.waiting) << "step " << row.step << ": waiting";
    EXPECT_EQ(o.blocks_used, row.blocks_used) << "step " << row.step << ": blocks used";
    EXPECT_EQ(o.preempted, row.preempted) << "step " << row.step << ": preempted";
  }

  // Nothing queued or running, every block free, and every sequence that was
  // not aborted finished with its prompt plus exactly the tokens sampled for it.
  // What Schedule is given from now on as max_step_tokens (0: none), as a
  // device executor bounds a step.
  void SetStepCap(int32_t cap) { step_cap_ = cap; }

  void ExpectDrained() {
    EXPECT_EQ(scheduler_.num_running(), 0);
    EXPECT_EQ(scheduler_.num_waiting(), 0);
    EXPECT_EQ(kv_.num_free_blocks(), kv_.num_usable_blocks());
    EXPECT_TRUE(kv_.allocator().Validate().ok()) << kv_.allocator().Validate();
    for (const auto& [id, seq] : seqs_) {
      EXPECT_EQ(seq->status, SeqStatus::kFinished) << "seq " << id;
      if (aborted_.contains(id)) continue;
      EXPECT_EQ(seq->num_generated(), seq->max_tokens) << "seq " << id;
      std::vector<int32_t> want = prompts_.at(id);
      want.insert(want.end(), sampled_[id].begin(), sampled_[id].end());
      EXPECT_EQ(seq->tokens, want) << "seq " << id;
    }
  }

  Sequence& seq(int id) { return *seqs_.at(id); }
  int cached_prompt_tokens(int id) const { return cached_prompt_tokens_.at(id); }
  int BlocksUsed() const { return kv_.num_usable_blocks() - kv_.num_free_blocks(); }
  KvCacheManager& kv() { return kv_; }
  StepScheduler& scheduler() { return scheduler_; }

 private:
  static std::vector<int> Ids(const std::vector<Sequence*>& v) {
    std::vector<int> ids;
    for (const Sequence* s : v) ids.push_back(static_cast<int>(s->id));
    return ids;
  }
  static std::vector<int> IdsOf(const std::deque<Sequence*>& v) {
    std::vector<int> ids;
    for (const Sequence* s : v) ids.push_back(static_cast<int>(s->id));
    return ids;
  }

  // What every plan must satisfy, whatever the scenario.
  void CheckPlan(const StepPlan& plan) {
    int32_t total = 0;
    std::set<const Sequence*> seen;
    for (const ScheduledSeq& s : plan.scheduled) {
      EXPECT_TRUE(seen.insert(s.seq).second) << "seq " << s.seq->id << " twice";
      EXPECT_EQ(s.seq->status, SeqStatus::kRunning);
      EXPECT_GT(s.num_new_tokens, 0);
      EXPECT_LE(s.num_new_tokens, config_.max_prefill_chunk);
      EXPECT_LE(s.seq->num_computed_tokens + s.num_new_tokens, s.seq->num_tokens());
      EXPECT_EQ(s.samples, s.seq->num_computed_tokens + s.num_new_tokens == s.seq->num_tokens());
      if (!config_.chunked_prefill) {
        EXPECT_TRUE(s.samples) << "a chunk without chunked prefill";
      }
      // The block table already covers this step's tokens.
      EXPECT_GE(static_cast<int64_t>(s.seq->block_table.size()) * kBs,
                s.seq->num_computed_tokens + s.num_new_tokens)
          << "seq " << s.seq->id;
      total += s.num_new_tokens;
    }
    EXPECT_EQ(plan.num_tokens, total);
    EXPECT_LE(total, config_.max_tokens_per_step);
    EXPECT_LE(static_cast<int>(plan.scheduled.size()), config_.max_num_seqs);
  }

  void CheckQueues() {
    EXPECT_LE(scheduler_.num_running(), config_.max_num_seqs);
    int held = 0;
    int64_t last_start = -1;
    for (const Sequence* s : scheduler_.running()) {
      EXPECT_EQ(s->status, SeqStatus::kRunning);
      EXPECT_GT(s->start_order, last_start) << "running not in start order";
      last_start = s->start_order;
      held += static_cast<int>(s->block_table.size());
    }
    for (const Sequence* s : scheduler_.waiting()) {
      EXPECT_EQ(s->status, SeqStatus::kWaiting);
      EXPECT_TRUE(s->block_table.empty()) << "waiting seq " << s->id << " holds blocks";
    }
    // Without sharing, the blocks in use are exactly the running sequences'.
    if (!prefix_caching_) {
      EXPECT_EQ(held, BlocksUsed());
    }
    EXPECT_TRUE(kv_.allocator().Validate().ok());
  }

  StepSchedulerConfig config_;
  bool prefix_caching_;
  KvCacheManager kv_;
  StepScheduler scheduler_;
  int32_t step_cap_ = 0;
  std::map<int, std::unique_ptr<Sequence>> seqs_;
  std::map<int, std::vector<int32_t>> prompts_, sampled_;
  std::map<int, int> cached_prompt_tokens_;
  std::set<int> aborted_;
  int64_t next_arrival_ = 0;
  int step_ = 0;
};

inline StepSchedulerConfig Config(int32_t budget, int32_t chunk, int32_t max_seqs = 8,
                                  bool chunked = true) {
  StepSchedulerConfig c;
  c.max_tokens_per_step = budget;
  c.max_prefill_chunk = chunk;
  c.max_num_seqs = max_seqs;
  c.chunked_prefill = chunked;
  return c;
}

}  // namespace cohost::runtime::sched_sim
