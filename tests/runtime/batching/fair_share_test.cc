// Token-weighted fairness between tenants: the virtual token counters, then
// the step scheduler under two tenants on the deterministic simulation
// (step_scheduler_sim.h): token shares follow the weights while both are
// backlogged, a quiet tenant's request is not held up by a flooding one, and
// two models' schedulers sharing their device's counters share the device's
// tokens by tenant.

#include "runtime/batching/fair_share.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/runtime/batching/step_scheduler_sim.h"

namespace cohost::runtime {
namespace {

TEST(FairShareTest, ChargesByWeightAndLiftsANewcomerToTheLeast) {
  FairShare f;
  f.Join(1);
  f.Charge(1, 100, 1);
  f.Join(2);
  EXPECT_EQ(f.Counter(2), 100) << "idle time banks no credit";
  f.Charge(2, 100, 2);
  EXPECT_EQ(f.Counter(2), 150) << "a weight of 2 counts each token half";
  f.Join(3);
  EXPECT_EQ(f.Counter(3), 100) << "the least active counter";
  f.Charge(3, 10, 0);
  EXPECT_EQ(f.Counter(3), 110) << "a weight that is not positive counts as 1";
  f.Leave(1);
  EXPECT_EQ(f.num_active(), 2);
  EXPECT_EQ(f.Counter(1), 0) << "forgotten when its last sequence leaves";
  f.Join(1);
  EXPECT_EQ(f.Counter(1), 110);
  f.Join(1);
  f.Leave(1);
  EXPECT_EQ(f.Counter(1), 110) << "one of its two sequences is still live";
}

using sched_sim::Sim;

StepSchedulerConfig Config(int32_t max_seqs, int32_t budget, int32_t chunk) {
  StepSchedulerConfig c;
  c.max_num_seqs = max_seqs;
  c.max_tokens_per_step = budget;
  c.max_prefill_chunk = chunk;
  return c;
}

// Tokens scheduled per tenant over the steps in which both had work left.
std::map<uint64_t, int64_t> SharesWhileBothBacklogged(Sim& sim,
                                                      const std::map<int, uint64_t>& owner,
                                                      int steps) {
  std::map<uint64_t, int64_t> tokens;
  for (int s = 0; s < steps; ++s) {
    const sched_sim::Observed o = sim.Step();
    for (const auto& [id, n] : o.scheduled) tokens[owner.at(id)] += n;
  }
  return tokens;
}

TEST(FairShareSchedulingTest, TokenSharesFollowTheWeightsWhileBothAreBacklogged) {
  struct Case {
    double weight_a, weight_b;
  };
  for (const Case& c : {Case{1, 1}, Case{2, 1}, Case{1, 3}}) {
    // A sends long prompts, B short ones, many of each: both stay backlogged
    // over the window measured.
    Sim sim(Config(/*max_seqs=*/8, /*budget=*/64, /*chunk=*/32), /*usable_blocks=*/512);
    std::map<int, uint64_t> owner;
    for (int i = 0; i < 300; ++i) {
      sim.AddForTenant(i, 96, 4, /*tenant=*/1, c.weight_a);
      owner[i] = 1;
    }
    for (int i = 0; i < 2000; ++i) {
      sim.AddForTenant(10000 + i, 12, 4, /*tenant=*/2, c.weight_b);
      owner[10000 + i] = 2;
    }
    std::map<uint64_t, int64_t> tokens = SharesWhileBothBacklogged(sim, owner, 10);  // warm-up
    tokens = SharesWhileBothBacklogged(sim, owner, 200);
    std::map<uint64_t, int> waiting;
    for (const Sequence* seq : sim.scheduler().waiting()) ++waiting[seq->tenant_key];
    ASSERT_GT(waiting[1], 0) << "A is still backlogged at the end of the window";
    ASSERT_GT(waiting[2], 0) << "B is still backlogged at the end of the window";
    const double total = static_cast<double>(tokens[1] + tokens[2]);
    const double want_a = c.weight_a / (c.weight_a + c.weight_b);
    EXPECT_NEAR(tokens[1] / total, want_a, 0.1 * want_a)
        << "weights " << c.weight_a << ":" << c.weight_b << ", tokens " << tokens[1] << " and "
        << tokens[2];
    for (auto& [id, seq] : owner) {
      if (sim.seq(id).status != SeqStatus::kFinished) sim.Abort(id);
    }
  }
}

TEST(FairShareSchedulingTest, AQuietTenantIsNotHeldUpByAFloodingOne) {
  // The flood: long prompts from tenant 1, more than the batch holds; tenant
  // 2 sends one request at a time. One of a single chunk (16 tokens) gets its
  // first token at the next step, as when alone, and that step carries no
  // more of the flood than its decodes and one token of its oldest sequence:
  // a step's time follows its tokens, so the quiet tenant's wall-clock TTFT
  // stays near its unloaded one too. One of four chunks (200 tokens) is owed
  // the steps until its tenant's virtual tokens pass the flood's; from then
  // on the two share the steps by their weights (equal here), so it takes at
  // most twice its steps alone.
  constexpr int kQuietRequests = 5;
  constexpr int kChunk = 64;
  for (int quiet_prompt : {16, 200}) {
    const int alone_steps = (quiet_prompt + kChunk - 1) / kChunk;
    for (bool flood : {false, true}) {
      const std::string what = absl::StrCat(flood ? "under the flood" : "alone", ", a prompt of ",
                                            quiet_prompt, " tokens");
      Sim sim(Config(/*max_seqs=*/8, /*budget=*/64, /*chunk=*/kChunk), /*usable_blocks=*/1024);
      if (flood) {
        for (int i = 0; i < 6; ++i) sim.AddForTenant(i, 400, 2, /*tenant=*/1);
        for (int s = 0; s < 3; ++s) sim.Step();  // the flood is under way
      }
      for (int q = 0; q < kQuietRequests; ++q) {
        const int id = 100 + q;
        sim.AddForTenant(id, quiet_prompt, 1, /*tenant=*/2);
        int steps = 0;
        while (sim.seq(id).status != SeqStatus::kFinished) {
          const auto& running = sim.scheduler().running();
          const auto decodes =
              std::count_if(running.begin(), running.end(),
                            [](const Sequence* seq) { return seq->num_uncomputed() == 1; });
          const sched_sim::Observed o = sim.Step();
          int step_tokens = 0;
          for (const auto& [seq_id, n] : o.scheduled) step_tokens += n;
          if (alone_steps == 1) {
            EXPECT_LE(step_tokens, quiet_prompt + decodes + 1)
                << what << ", request " << q << ": " << sched_sim::Describe(o.scheduled);
          }
          ++steps;
          ASSERT_LT(steps, 100);
        }
        if (alone_steps == 1 || !flood) {
          EXPECT_EQ(steps, alone_steps)
              << what << ", request " << q << ": its first token comes as soon as when alone";
        } else {
          EXPECT_LE(steps, 2 * alone_steps) << what << ", request " << q;
        }
      }
      if (flood) {
        // The flood's sequences all still get their turn.
        while (sim.scheduler().num_running() + sim.scheduler().num_waiting() > 0) sim.Step();
        sim.ExpectDrained();
      }
    }
  }
}

// Two models on one device, stepped in turn: tenant 1 floods model X and also
// queues on model Y, where tenant 2 queues as much. With each model's own
// counters tenant 1 takes half of Y on top of all of X (3/4 of the device);
// with the device's shared counters what it took on X counts on Y, and the
// device's tokens split by the weights.
TEST(FairShareSchedulingTest, ModelsSharingADevicesCountersShareItsTokensByTenant) {
  for (bool shared : {false, true}) {
    FairShare device;
    Sim x(Config(/*max_seqs=*/8, /*budget=*/64, /*chunk=*/32), /*usable_blocks=*/512, false,
          shared ? &device : nullptr);
    Sim y(Config(/*max_seqs=*/8, /*budget=*/64, /*chunk=*/32), /*usable_blocks=*/512, false,
          shared ? &device : nullptr);
    std::map<int, uint64_t> owner;
    for (int i = 0; i < 400; ++i) {
      x.AddForTenant(i, 96, 4, /*tenant=*/1);
      y.AddForTenant(1000 + i, 96, 4, /*tenant=*/1);
      y.AddForTenant(2000 + i, 96, 4, /*tenant=*/2);
      owner[i] = owner[1000 + i] = 1;
      owner[2000 + i] = 2;
    }
    std::map<uint64_t, int64_t> tokens;
    for (int s = 0; s < 210; ++s) {
      for (Sim* sim : {&x, &y}) {
        const sched_sim::Observed o = sim->Step();
        if (s < 10) continue;  // warm-up
        for (const auto& [id, n] : o.scheduled) tokens[owner.at(id)] += n;
      }
    }
    std::map<uint64_t, int> waiting;
    for (const Sequence* seq : y.scheduler().waiting()) ++waiting[seq->tenant_key];
    ASSERT_GT(waiting[1], 0) << "tenant 1 is still backlogged on Y";
    ASSERT_GT(waiting[2], 0) << "tenant 2 is still backlogged on Y";
    const double share =
        static_cast<double>(tokens[1]) / static_cast<double>(tokens[1] + tokens[2]);
    if (shared) {
      EXPECT_NEAR(share, 0.5, 0.05) << "tenant 1's share of the device, counters shared";
    } else {
      EXPECT_NEAR(share, 0.75, 0.05) << "tenant 1's share of the device, counters per model";
    }
    for (const auto& [id, tenant] : owner) {
      Sim& sim = id < 1000 ? x : y;
      if (sim.seq(id).status != SeqStatus::kFinished) sim.Abort(id);
    }
  }
}

}  // namespace
}  // namespace cohost::runtime
