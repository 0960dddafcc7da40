// StepScheduler as deterministic simulations over the real KvCacheManager: each
// test is a table of expected states per step (tokens scheduled per sequence,
// running and waiting queues, blocks in use) for chunked prefill, the token
// budget, FIFO admission, the sequence cap, preemption, abort and prefix
// caching, plus randomized workloads for liveness. Sim (scheduler_sim.h) also
// checks invariants every step and a drained pool at the end. Block size is 4
// tokens throughout, so block counts stay readable.

#include "runtime/batching/step_scheduler.h"

#include <algorithm>
#include <iterator>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/batching/step_scheduler_sim.h"

namespace cohost::runtime {
namespace {

using sched_sim::Config;
using sched_sim::Describe;
using sched_sim::kBs;
using sched_sim::Observed;
using sched_sim::Sim;

// (1) Two short requests decode while a 20-token prompt arrives at step 2:
// each step the decodes take their one token first and the long prompt gets
// the rest of the 8-token budget (6), until its last 2 tokens and a decode.
TEST(StepSchedulerTest, ChunkedPrefillKeepsDecodesFlowing) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/8), /*usable_blocks=*/64);
  sim.Run(
      {
          // step, {id: tokens}, running, waiting, blocks used
          {0, {{1, 3}, {2, 3}}, {1, 2}, {}, 2},
          {1, {{1, 1}, {2, 1}}, {1, 2}, {}, 2},
          {2, {{1, 1}, {2, 1}, {3, 6}}, {1, 2, 3}, {}, 6},  // 5 tokens -> 2 blocks each
          {3, {{1, 1}, {2, 1}, {3, 6}}, {1, 2, 3}, {}, 7},
          {4, {{1, 1}, {2, 1}, {3, 6}}, {1, 2, 3}, {}, 9},
          {5, {{1, 1}, {2, 1}, {3, 2}}, {3}, {}, 5},  // 1 and 2 reach max_tokens (6)
          {6, {{3, 1}}, {}, {}, 0},
      },
      [&](int step) {
        if (step == 0) {
          sim.Add(1, 3, 6);
          sim.Add(2, 3, 6);
        }
        if (step == 2) sim.Add(3, 20, 2);
      });
}

// A step capped below the budget (a device executor bounding a step's time)
// still keeps a token for every running decode: an older sequence's long
// prefill takes the rest, not all of it.
TEST(StepSchedulerTest, ACappedStepKeepsATokenForEachDecodeBehindAPrefill) {
  Sim sim(Config(/*budget=*/80, /*chunk=*/64), 128);
  sim.Add(1, 200, 1);
  sim.Add(2, 2, 4);
  const Observed first = sim.Step();
  ASSERT_EQ(Describe(first.scheduled), "1:64 2:2 ");  // admitted together; 2 now decodes
  sim.SetStepCap(8);
  for (int step = 1; step <= 3; ++step) {
    const Observed o = sim.Step();
    EXPECT_EQ(Describe(o.scheduled), "1:7 2:1 ") << "step " << step;
  }
  for (int step = 4; step < 100 && !(sim.Step().running.empty()); ++step) {
  }
  sim.ExpectDrained();
}

// A short prompt queued behind a long one's prefill starts in the next step:
// the prefill leaves it its whole prompt (and keeps the rest of the budget).
// A prompt longer than half the budget is not short: it waits its turn, as
// does a short one behind it (FIFO), until the long prefill is done.
TEST(StepSchedulerTest, AShortPromptStartsBesideALongPrefill) {
  Sim sim(Config(/*budget=*/16, /*chunk=*/16), 128);
  sim.Add(1, 100, 1);
  EXPECT_EQ(Describe(sim.Step().scheduled), "1:16 ");
  sim.Add(2, 5, 1);  // short: starts at once
  Observed o = sim.Step();
  EXPECT_EQ(Describe(o.scheduled), "1:11 2:5 ");
  EXPECT_EQ(o.waiting, std::vector<int>{});
  sim.Add(3, 9, 1);  // over half the budget: waits for the long prefill
  sim.Add(4, 2, 1);  // behind it
  for (int step = 0; step < 4; ++step) {
    o = sim.Step();
    EXPECT_EQ(Describe(o.scheduled), "1:16 ") << "step " << step;
    EXPECT_EQ(o.waiting, (std::vector<int>{3, 4})) << "step " << step;
  }
  o = sim.Step();  // the long prompt's last 9 tokens, then the queue in order
  EXPECT_EQ(Describe(o.scheduled), "1:9 3:7 ");
  for (int step = 0; step < 10 && !sim.Step().running.empty(); ++step) {
  }
  sim.ExpectDrained();
}

// A prefill keeps at least half its room for a short prompt, however many
// decodes run behind it, and one of a higher priority than the short
// prompt leaves it none.
TEST(StepSchedulerTest, AShortPromptTakesAtMostHalfAPrefillsRoomAndNoneOfAHigherOnes) {
  Sim sim(Config(/*budget=*/32, /*chunk=*/32), 256);
  for (int id = 1; id <= 6; ++id) sim.Add(id, 1, 50);  // six decodes
  sim.Add(7, 200, 1);                                  // and a long prompt
  EXPECT_EQ(Describe(sim.Step().scheduled), "1:1 2:1 3:1 4:1 5:1 6:1 7:26 ");
  sim.SetStepCap(16);  // a step capped (the executor's slice): 10 left after the decodes
  sim.Add(8, 8, 1);    // short at 16 (8 = half): takes half the prefill's room, 5
  Observed o = sim.Step();
  EXPECT_EQ(Describe(o.scheduled), "1:1 2:1 3:1 4:1 5:1 6:1 7:5 8:5 ");
  for (int step = 0; step < 100 && !sim.Step().running.empty(); ++step) {
  }
  sim.ExpectDrained();

  Sim high(Config(/*budget=*/16, /*chunk=*/16), 128);
  high.Add(1, 100, 1, /*priority=*/5);
  EXPECT_EQ(Describe(high.Step().scheduled), "1:16 ");
  high.Add(2, 4, 1, /*priority=*/0);
  o = high.Step();
  EXPECT_EQ(Describe(o.scheduled), "1:16 ") << "a higher priority's prefill is not shrunk";
  EXPECT_EQ(o.waiting, std::vector<int>{2});
  for (int step = 0; step < 100 && !high.Step().running.empty(); ++step) {
  }
  high.ExpectDrained();
}

// A short prompt admitted in part (decodes took the rest of the step) is a
// short prefill running behind the long one: the long one leaves it room
// too, so its prompt is done in the next step, not after the long prefill.
TEST(StepSchedulerTest, AShortPromptAdmittedInPartFinishesItsPromptInTheNextStep) {
  Sim sim(Config(/*budget=*/32, /*chunk=*/32), 1024);
  sim.Add(1, 1000, 1);
  sim.Step();
  for (int id = 2; id <= 7; ++id) sim.Add(id, 1, 50);  // six decodes, started one a step
  for (int step = 0; step < 6; ++step) sim.Step();
  sim.Add(8, 16, 1);  // short at 32; the decodes leave it 13 of its 16 in its first step
  int prompt_done = 0;
  for (int step = 0; step < 2; ++step) {
    for (const auto& [id, n] : sim.Step().scheduled) {
      if (id == 8) prompt_done += n;
    }
  }
  EXPECT_EQ(prompt_done, 16) << "its whole prompt within two steps";
  for (int step = 0; step < 100 && !sim.Step().running.empty(); ++step) {
  }
  sim.ExpectDrained();
}

// (2) The budget cuts a prompt into chunks of exactly what the decodes leave:
// 10 - 2 - 2 = 6, then 10 - 1 - 1 = 8, 8, and the last 3.
TEST(StepSchedulerTest, TokenBudgetSplitsPromptIntoBudgetRemainders) {
  Sim sim(Config(/*budget=*/10, /*chunk=*/512), 64);
  sim.Add(1, 2, 4);
  sim.Add(2, 2, 4);
  sim.Add(3, 25, 1);
  sim.Run({
      {0, {{1, 2}, {2, 2}, {3, 6}}, {1, 2, 3}, {}, 4},
      {1, {{1, 1}, {2, 1}, {3, 8}}, {1, 2, 3}, {}, 6},
      {2, {{1, 1}, {2, 1}, {3, 8}}, {1, 2, 3}, {}, 8},
      {3, {{1, 1}, {2, 1}, {3, 3}}, {}, {}, 0},
  });
}

// max_prefill_chunk caps one sequence even when the budget is large; the next
// waiting sequence uses what is left in the same step.
TEST(StepSchedulerTest, PrefillChunkCapsOneSequence) {
  Sim sim(Config(/*budget=*/100, /*chunk=*/8), 64);
  sim.Add(1, 20, 1);
  sim.Add(2, 5, 1);
  sim.Run({
      {0, {{1, 8}, {2, 5}}, {1}, {}, 2},
      {1, {{1, 8}}, {1}, {}, 4},
      {2, {{1, 4}}, {}, {}, 0},
  });
}

// (3) FIFO admission: request 2 needs 4 blocks for its 16-token prompt while 1
// holds 3-4 of the 6; request 3 would fit (1 block) but may not overtake it.
// Both start the step after 1 finishes (admission precedes finishing).
TEST(StepSchedulerTest, HeadOfQueueThatDoesNotFitBlocksAdmission) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64), /*usable_blocks=*/6);
  sim.Add(1, 12, 4);
  sim.Add(2, 16, 2);
  sim.Add(3, 2, 2);
  sim.Run({
      {0, {{1, 12}}, {1}, {2, 3}, 3},
      {1, {{1, 1}}, {1}, {2, 3}, 4},
      {2, {{1, 1}}, {1}, {2, 3}, 4},
      {3, {{1, 1}}, {}, {2, 3}, 0},
      {4, {{2, 16}, {3, 2}}, {2, 3}, {}, 5},
      {5, {{2, 1}, {3, 1}}, {}, {}, 0},
  });
}

// (4) At most max_num_seqs sequences run; the third starts once a slot frees.
TEST(StepSchedulerTest, MaxNumSeqsCapsRunningSequences) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64, /*max_seqs=*/2), 64);
  sim.Add(1, 3, 2);
  sim.Add(2, 3, 2);
  sim.Add(3, 3, 2);
  sim.Run({
      {0, {{1, 3}, {2, 3}}, {1, 2}, {3}, 2},
      {1, {{1, 1}, {2, 1}}, {}, {3}, 0},
      {2, {{3, 3}}, {3}, {}, 1},
      {3, {{3, 1}}, {}, {}, 0},
  });
}

std::vector<int> WaitingIds(const StepScheduler& s) {
  std::vector<int> ids;
  for (const Sequence* seq : s.waiting()) ids.push_back(static_cast<int>(seq->id));
  return ids;
}

// Under a backlog, a higher priority is admitted before lower ones that
// arrived earlier; FIFO within a priority; running work is never preempted
// for it.
TEST(StepSchedulerTest, HigherPriorityWaitsLessButPreemptsNothing) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64, /*max_seqs=*/1), 64);
  sim.Add(1, 3, 3);
  sim.Step();  // 1 runs
  sim.Add(2, 3, 2);
  sim.Add(3, 3, 2);
  sim.Add(4, 3, 2, /*priority=*/5);
  sim.Add(5, 3, 2, /*priority=*/5);
  sim.Add(6, 3, 2, /*priority=*/-1);
  EXPECT_EQ(WaitingIds(sim.scheduler()), (std::vector<int>{4, 5, 2, 3, 6}));
  ASSERT_EQ(sim.scheduler().running().size(), 1u);
  EXPECT_EQ(sim.scheduler().running()[0]->id, 1);
}

// A preempted sequence resumes first, whatever the priority of later arrivals.
TEST(StepSchedulerTest, PreemptedSequencesStayAheadOfHigherPriorities) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64), /*usable_blocks=*/4);
  sim.Add(1, 4, 6);
  sim.Add(2, 4, 6);
  sim.Add(3, 4, 6);
  sim.Step();
  sim.Step();  // 3 is preempted (see the next test)
  ASSERT_EQ(WaitingIds(sim.scheduler()), std::vector<int>{3});
  sim.Add(4, 2, 2, /*priority=*/9);
  EXPECT_EQ(WaitingIds(sim.scheduler()), (std::vector<int>{3, 4}));
}

// (5) Three decodes on a 4-block pool. At step 1 sequence 2 needs a second
// block: 3, the newest, is preempted and requeued. 3 comes back only when all
// its 5 tokens (prompt 4 + 1 generated, kept) fit. At step 5 the oldest, 1,
// needs a third block and preempts 2, which goes to the front, ahead of 3.
TEST(StepSchedulerTest, PreemptsNewestAndResumesWithGeneratedTokens) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64), /*usable_blocks=*/4);
  sim.Add(1, 4, 6);
  sim.Add(2, 4, 6);
  sim.Add(3, 4, 6);
  sim.Run({
      {0, {{1, 4}, {2, 4}, {3, 4}}, {1, 2, 3}, {}, 3},
      {1, {{1, 1}, {2, 1}}, {1, 2}, {3}, 4, {3}},
      {2, {{1, 1}, {2, 1}}, {1, 2}, {3}, 4},
      {3, {{1, 1}, {2, 1}}, {1, 2}, {3}, 4},
      {4, {{1, 1}, {2, 1}}, {1, 2}, {3}, 4},
      {5, {{1, 1}}, {}, {2, 3}, 0, {2}},
      {6, {{2, 9}}, {}, {3}, 0},  // prompt 4 + 5 generated, recomputed at once
      {7, {{3, 5}}, {3}, {}, 2},  // prompt 4 + 1 generated
      {8, {{3, 1}}, {3}, {}, 2},
      {9, {{3, 1}}, {3}, {}, 2},
      {10, {{3, 1}}, {3}, {}, 2},
      {11, {{3, 1}}, {}, {}, 0},
  });
  EXPECT_EQ(sim.scheduler().num_preemptions(), 2);
  EXPECT_EQ(sim.seq(1).num_preemptions, 0);
  EXPECT_EQ(sim.seq(2).num_preemptions, 1);
  EXPECT_EQ(sim.seq(3).num_preemptions, 1);
}

// Several victims in one step: 1's second 8-token chunk needs 2 blocks and the
// pool is full, so 3 then 2 are preempted; the queue keeps start order (2, 3).
// Nothing is admitted in a step that preempted.
TEST(StepSchedulerTest, SeveralVictimsRequeueInStartOrder) {
  Sim sim(Config(/*budget=*/10, /*chunk=*/8), /*usable_blocks=*/4);
  sim.Add(1, 16, 1);
  sim.Add(2, 1, 5);
  sim.Add(3, 1, 5);
  sim.Run({
      {0, {{1, 8}, {2, 1}, {3, 1}}, {1, 2, 3}, {}, 4},
      {1, {{1, 8}}, {}, {2, 3}, 0, {3, 2}},
      {2, {{2, 2}, {3, 2}}, {2, 3}, {}, 2},
      {3, {{2, 1}, {3, 1}}, {2, 3}, {}, 2},
      {4, {{2, 1}, {3, 1}}, {2, 3}, {}, 2},
      {5, {{2, 1}, {3, 1}}, {}, {}, 0},
  });
}

// No thrashing. Step 2: 3 needs a second block and, newest, preempts itself.
// Step 3: it is readmitted with blocks for all 5 of its tokens, computing 4.
// Step 4: the oldest, 1, needs a third block with none free; 3 has not sampled
// since its preemption, so it is not a victim, and 1 never preempts itself:
// 1 waits a step while 3 finishes its recompute and samples. Step 5: 3 has
// progressed, so it may be preempted again.
TEST(StepSchedulerTest, ResumedSequenceIsNotPreemptedBeforeItSamples) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/4), /*usable_blocks=*/4);
  sim.Add(1, 6, 4);
  sim.Add(2, 2, 3);
  sim.Add(3, 4, 3);
  sim.Run({
      {0, {{1, 4}, {2, 2}, {3, 2}}, {1, 2, 3}, {}, 3},
      {1, {{1, 2}, {2, 1}, {3, 2}}, {1, 2, 3}, {}, 4},
      {2, {{1, 1}, {2, 1}}, {1}, {3}, 2, {3}},
      {3, {{1, 1}, {3, 4}}, {1, 3}, {}, 4},  // 3 holds 2 blocks for 5 tokens
      {4, {{3, 1}}, {1, 3}, {}, 4},          // 1 skipped, 3 samples
      {5, {{1, 1}}, {}, {3}, 0, {3}},
      {6, {{3, 4}}, {3}, {}, 2},
      {7, {{3, 2}}, {}, {}, 0},
  });
  EXPECT_EQ(sim.seq(3).num_preemptions, 2);
}

// Why a resumed sequence reserves blocks for all its tokens. Step 1: 2 needs a
// second block and preempts itself. Step 2: its first 4-token chunk would fit
// the one free block, but all 5 of its tokens do not, so it waits. Had it
// started, at step 4 the oldest, 1, would need a third block with none free
// and no eligible victim (2 has not sampled since its preemption), and 2 would
// need a second one with no eligible victim either (1 is the oldest): stuck.
TEST(StepSchedulerTest, ResumedSequenceWaitsUntilAllItsTokensFit) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/4), /*usable_blocks=*/3);
  sim.Add(1, 6, 4);
  sim.Add(2, 4, 2);
  sim.Add(3, 2, 2);
  sim.Run({
      {0, {{1, 4}, {2, 4}}, {1, 2}, {3}, 2},
      {1, {{1, 2}}, {1}, {2, 3}, 2, {2}},
      {2, {{1, 1}}, {1}, {2, 3}, 2},
      {3, {{1, 1}}, {1}, {2, 3}, 2},
      {4, {{1, 1}}, {}, {2, 3}, 0},
      {5, {{2, 4}, {3, 2}}, {2, 3}, {}, 3},  // 2 holds 2 blocks for 5 tokens
      {6, {{2, 1}, {3, 1}}, {}, {}, 0},
  });
}

// (6) Abort in every state; the blocks come back immediately (checked by
// Sim::Abort) and the others carry on. 3 waits behind the sequence cap, 2 is
// mid-prefill (8 of 12 tokens), 1 is decoding.
TEST(StepSchedulerTest, AbortWaitingMidPrefillAndDecoding) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/4, /*max_seqs=*/2), 6);
  sim.Add(1, 2, 10);
  sim.Add(2, 12, 2);
  sim.Add(3, 4, 2);
  sim.ExpectStep({0, {{1, 2}, {2, 4}}, {1, 2}, {3}, 2});
  sim.ExpectStep({1, {{1, 1}, {2, 4}}, {1, 2}, {3}, 3});
  sim.Abort(3);  // waiting
  EXPECT_EQ(sim.BlocksUsed(), 3);
  sim.Abort(2);  // mid-prefill: 2 blocks back
  EXPECT_EQ(sim.BlocksUsed(), 1);
  sim.ExpectStep({2, {{1, 1}}, {1}, {}, 1});
  sim.ExpectStep({3, {{1, 1}}, {1}, {}, 2});
  sim.Abort(1);  // decoding
  EXPECT_EQ(sim.BlocksUsed(), 0);
  StepPlan plan = sim.scheduler().Schedule();
  EXPECT_TRUE(plan.empty());
  sim.ExpectDrained();
  EXPECT_EQ(sim.seq(2).num_computed_tokens, 0);
}

// Abort of a preempted sequence (waiting, no blocks) and of a resumed one
// mid-recompute (holding its reserved blocks).
TEST(StepSchedulerTest, AbortPreemptedAndResumedSequences) {
  {
    Sim sim(Config(64, 64), 4);
    sim.Add(1, 4, 6);
    sim.Add(2, 4, 6);
    sim.Add(3, 4, 6);
    sim.ExpectStep({0, {{1, 4}, {2, 4}, {3, 4}}, {1, 2, 3}, {}, 3});
    sim.ExpectStep({1, {{1, 1}, {2, 1}}, {1, 2}, {3}, 4, {3}});
    sim.Abort(3);  // preempted, waiting at the front
    sim.Run({
        {2, {{1, 1}, {2, 1}}, {1, 2}, {}, 4},
        {3, {{1, 1}, {2, 1}}, {1, 2}, {}, 4},
        {4, {{1, 1}, {2, 1}}, {1, 2}, {}, 4},
        {5, {{1, 1}}, {}, {2}, 0, {2}},
        {6, {{2, 9}}, {}, {}, 0},
    });
  }
  {
    Sim sim(Config(8, 4), 4);
    sim.Add(1, 6, 4);
    sim.Add(2, 2, 3);
    sim.Add(3, 4, 3);
    sim.ExpectStep({0, {{1, 4}, {2, 2}, {3, 2}}, {1, 2, 3}, {}, 3});
    sim.ExpectStep({1, {{1, 2}, {2, 1}, {3, 2}}, {1, 2, 3}, {}, 4});
    sim.ExpectStep({2, {{1, 1}, {2, 1}}, {1}, {3}, 2, {3}});
    sim.ExpectStep({3, {{1, 1}, {3, 4}}, {1, 3}, {}, 4});
    sim.Abort(3);  // resumed, 4 of 5 tokens recomputed
    sim.Run({
        {4, {{1, 1}}, {}, {}, 0},  // 1 gets its third block without preempting
    });
  }
}

// (7) Prefix cache, shared with a finished sequence: 2 shares the first two
// full blocks (8 tokens) of 1's prompt, so it computes only its 3-token suffix
// in one step under a 4-token budget. 3's whole 8-token prompt is cached but
// its last token must be computed, so it reuses one block and computes 4.
TEST(StepSchedulerTest, PrefixSharedWithFinishedSequenceComputesOnlySuffix) {
  Sim sim(Config(/*budget=*/4, /*chunk=*/64), 16, /*prefix_caching=*/true);
  std::vector<int32_t> prompt1(10);
  std::iota(prompt1.begin(), prompt1.end(), 7000);
  std::vector<int32_t> prompt2(prompt1.begin(), prompt1.begin() + 8);
  prompt2.insert(prompt2.end(), {1, 2, 3});
  std::vector<int32_t> prompt3(prompt1.begin(), prompt1.begin() + 8);
  sim.AddPrompt(1, prompt1, 2);
  sim.Run(
      {
          {0, {{1, 4}}, {1}, {}, 1},
          {1, {{1, 4}}, {1}, {}, 2},
          {2, {{1, 2}}, {1}, {}, 3},
          {3, {{1, 1}}, {}, {}, 0},  // its blocks are free but stay cached
          {4, {{2, 3}}, {}, {}, 0},
          {5, {{3, 4}}, {}, {}, 0},
      },
      [&](int step) {
        if (step == 4) sim.AddPrompt(2, prompt2, 1);
        if (step == 5) sim.AddPrompt(3, prompt3, 1);
      });
  EXPECT_EQ(sim.cached_prompt_tokens(1), 0);
  EXPECT_EQ(sim.cached_prompt_tokens(2), 8);
  EXPECT_EQ(sim.cached_prompt_tokens(3), 4);
}

// A preempted sequence that refinds its own prompt's blocks when it resumes
// found nothing another request computed: what it reports as cached (its
// usage, the cached-tokens metric) is what its first admission found, 0
// here; it reported the whole prompt.
TEST(StepSchedulerTest, CachedPromptTokensAreWhatTheFirstAdmissionFound) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64), 16, /*prefix_caching=*/true);
  Sequence* s = sim.Add(1, 12, 8);
  sim.Step();  // the prompt, and a first token: its 3 full blocks are cached
  sim.Step();
  EXPECT_EQ(s->num_cached_prompt_tokens, 0);
  EXPECT_EQ(sim.scheduler().PreemptHolding([](BlockId) { return true; }), 1);
  const Observed resumed = sim.Step();
  ASSERT_EQ(resumed.running, std::vector<int>{1});
  EXPECT_LT(resumed.scheduled.at(0).second, s->num_tokens() - 1) << "it refound its blocks";
  EXPECT_EQ(s->num_cached_prompt_tokens, 0);
  while (!sim.scheduler().running().empty()) sim.Step();
}

// Prefix shared with a running sequence: 2's first two blocks are 1's, held by
// both (4 blocks in use, not 6). Another tenant's salt shares nothing.
TEST(StepSchedulerTest, PrefixSharedWithRunningSequence) {
  Sim sim(Config(/*budget=*/64, /*chunk=*/64), 16, /*prefix_caching=*/true);
  std::vector<int32_t> prompt1(9);
  std::iota(prompt1.begin(), prompt1.end(), 7000);
  std::vector<int32_t> prompt2(prompt1.begin(), prompt1.begin() + 8);
  prompt2.insert(prompt2.end(), {1, 2});
  sim.AddPrompt(1, prompt1, 4);
  sim.Run(
      {
          {0, {{1, 9}}, {1}, {}, 3},
          {1, {{1, 1}, {2, 2}, {3, 10}}, {1, 2, 3}, {}, 4 + 3},
          {2, {{1, 1}, {2, 1}, {3, 1}}, {1}, {}, 3},
          {3, {{1, 1}}, {}, {}, 0},
      },
      [&](int step) {
        if (step == 1) {
          sim.AddPrompt(2, prompt2, 2);
          sim.AddPrompt(3, prompt2, 2, /*salt=*/7);
        }
      });
  EXPECT_EQ(sim.cached_prompt_tokens(2), 8);
  EXPECT_EQ(sim.cached_prompt_tokens(3), 0);
}

// (8) Without chunked prefill a prompt is admitted only whole: 2 (6 tokens)
// does not fit the 5 tokens left at step 0 and waits, and 3 waits behind it.
TEST(StepSchedulerTest, WithoutChunkedPrefillPromptsAreAdmittedWhole) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/8, 8, /*chunked=*/false), 64);
  sim.Add(1, 3, 4);
  sim.Add(2, 6, 2);
  sim.Add(3, 2, 2);
  sim.Run({
      {0, {{1, 3}}, {1}, {2, 3}, 1},
      {1, {{1, 1}, {2, 6}}, {1, 2}, {3}, 3},
      {2, {{1, 1}, {2, 1}, {3, 2}}, {1, 3}, {}, 3},
      {3, {{1, 1}, {3, 1}}, {}, {}, 0},
  });
}

// The same arrivals with chunking on: 2's prompt is split 5 + 1.
// Without chunked prefill a capped step (a device executor bounding a step's
// time) still admits the next prompt whole: a cap below its size would hold it
// back for as long as anything decodes.
TEST(StepSchedulerTest, WithoutChunkingACappedStepStillAdmitsTheNextPromptWhole) {
  StepSchedulerConfig config = Config(/*budget=*/64, /*chunk=*/64);
  config.chunked_prefill = false;
  Sim sim(config, 128);
  sim.Add(1, 4, 20);
  ASSERT_EQ(Describe(sim.Step().scheduled), "1:4 ");
  sim.SetStepCap(8);
  sim.Add(2, 30, 2);
  EXPECT_EQ(Describe(sim.Step().scheduled), "1:1 2:30 ") << "the whole prompt beside the decode";
  for (int step = 2; step < 100 && !(sim.Step().running.empty()); ++step) {
  }
  sim.ExpectDrained();
}

TEST(StepSchedulerTest, WithChunkedPrefillTheSamePromptIsSplit) {
  Sim sim(Config(/*budget=*/8, /*chunk=*/8, 8, /*chunked=*/true), 64);
  sim.Add(1, 3, 4);
  sim.Add(2, 6, 2);
  sim.Add(3, 2, 2);
  sim.Run({
      {0, {{1, 3}, {2, 5}}, {1, 2}, {3}, 3},
      {1, {{1, 1}, {2, 1}, {3, 2}}, {1, 2, 3}, {}, 4},
      {2, {{1, 1}, {2, 1}, {3, 1}}, {1}, {}, 2},
      {3, {{1, 1}}, {}, {}, 0},
  });
}

// Liveness and invariants over random workloads, scheduler only: random
// configurations, small pools, prompts sharing prefixes (some salted), random
// arrivals and aborts in any state. Every request the Engine would accept
// (prompt + max_tokens fits the pool; without chunking, a whole recompute fits
// one step) must finish within a bound: no deadlock, no livelock. Sim checks
// the per-step invariants, no thrashing, and a drained pool at the end.
TEST(StepSchedulerTest, RandomWorkloadsAlwaysDrain) {
  int64_t total_preemptions = 0;
  for (uint32_t seed = 1; seed <= 2000; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const bool chunked = uniform(0, 3) != 0;
    const int32_t budget = uniform(2, 24);
    const int32_t chunk = uniform(1, 12);
    const int32_t max_seqs = uniform(1, 8);
    const int32_t usable = uniform(3, 10);
    const bool caching = uniform(0, 1) == 1;
    Sim sim(Config(budget, chunk, max_seqs, chunked), usable, caching);

    // At most this many tokens per sequence (prompt + max_tokens - 1 are ever
    // computed), as the Engine's Submit check guarantees.
    int32_t max_total = usable * kBs + 1;
    if (!chunked) max_total = std::min(max_total, std::min(budget, chunk) + 1);
    if (max_total < 3) continue;
    std::vector<std::vector<int32_t>> prefixes(3);
    for (auto& p : prefixes) {
      p.resize(uniform(1, 3) * kBs);
      for (int32_t& t : p) t = uniform(0, 1 << 20);
    }
    const int num_seqs = uniform(1, 12);
    std::vector<int> arrival_step(num_seqs);
    for (int& a : arrival_step) a = uniform(0, 8);
    std::set<int> live;
    int added = 0;
    for (int step = 0; step < 5000; ++step) {
      for (int id = 0; id < num_seqs; ++id) {
        if (arrival_step[id] != step) continue;
        const int32_t total = uniform(2, max_total);
        const int32_t max_tokens = uniform(1, total - 1);
        const int32_t prompt_len = total - max_tokens;
        std::vector<int32_t> prompt;
        if (caching && uniform(0, 1) == 1) {
          const auto& p = prefixes[uniform(0, 2)];
          prompt.assign(p.begin(), p.begin() + std::min<size_t>(p.size(), prompt_len));
        }
        while (static_cast<int32_t>(prompt.size()) < prompt_len)
          prompt.push_back(uniform(0, 1 << 20));
        // Up to three tenants of different weights: fair sharing reorders
        // admission and holds chunks back, and must never stall a schedule.
        const uint64_t tenant = static_cast<uint64_t>(uniform(0, 2));
        sim.AddPrompt(id, prompt, max_tokens, /*salt=*/uniform(0, 3) == 0 ? 9 : 0,
                      /*priority=*/0, tenant, /*weight=*/1.0 + static_cast<double>(tenant));
        live.insert(id);
        ++added;
      }
      // Occasional aborts, in whatever state the victim is; only early on, so
      // that aborts cannot rescue a deadlocked schedule.
      if (step < 40 && !live.empty() && uniform(0, 30) == 0) {
        auto it = live.begin();
        std::advance(it, uniform(0, static_cast<int>(live.size()) - 1));
        if (sim.seq(*it).status != SeqStatus::kFinished) sim.Abort(*it);
      }
      for (auto it = live.begin(); it != live.end();) {
        it = sim.seq(*it).status == SeqStatus::kFinished ? live.erase(it) : std::next(it);
      }
      if (added == num_seqs && live.empty()) break;
      sim.Step();
      if (::testing::Test::HasFailure()) return;
    }
    ASSERT_TRUE(live.empty()) << live.size() << " sequences never finished";
    sim.ExpectDrained();
    total_preemptions += sim.scheduler().num_preemptions();
  }
  // The workloads are small enough to preempt often; otherwise this tests little.
  EXPECT_GT(total_preemptions, 100);
}

// Remove is idempotent and Commit skips a sequence removed after Schedule (an
// abort that raced the step, or a caller that finishes before committing).
TEST(StepSchedulerTest, CommitSkipsSequencesRemovedAfterSchedule) {
  Sim sim(Config(64, 64), 8);
  Sequence* a = sim.Add(1, 5, 3);
  StepPlan plan = sim.scheduler().Schedule();
  ASSERT_EQ(plan.scheduled.size(), 1u);
  sim.scheduler().Remove(a);
  sim.scheduler().Remove(a);
  sim.scheduler().Commit(plan);
  EXPECT_EQ(a->num_computed_tokens, 0);
  EXPECT_EQ(sim.BlocksUsed(), 0);
  EXPECT_EQ(sim.scheduler().num_running(), 0);
}

}  // namespace
}  // namespace cohost::runtime
