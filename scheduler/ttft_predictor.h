// Predicting a new request's time to first token from the prefill queued on
// its device, and judging it against its model's TTFT target: pure
// functions, tested as tables (tests/scheduler/ttft_predictor_test.cc). The
// Router feeds them each model's backlog (ServedModel::Backlog) at Submit.
//
// The model: a request waits for the prompt tokens queued on its device
// before its own, each model's tokens costing what its own steps cost
// (runtime::StepCost, fitted from them), plus the time its model needs to be
// ready (a load, when it is not resident). Of other models' tokens it waits
// for all (the executor serves first tokens earliest deadline first across
// models, which with equal targets is arrival order); of its own model's,
// for what the step scheduler serves before it: started prefill and waiting
// prompts of at least its priority (ServedModel::Backlog(priority)), or,
// for a short prompt with none of those queued, two steps at most (it
// starts beside the running prefills: EngineStats::PrefillTokensAheadOf). Its
// own prompt counts less what its model's prefix cache holds at Submit
// (ServedModel::CachedPromptTokens). A model's steps take its step budget,
// or, while its streams decode, what its TPOT target holds
// (StepCost::TokensWithin: the executor's StepTokenCap). Not modelled: the cache hits of the
// prompts queued ahead (counted as computed: pessimistic), decode tokens of
// other models interleaved with the prefill, and a higher-priority request
// arriving later and going first.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "absl/types/span.h"
#include "runtime/batching/request.h"
#include "runtime/batching/step_cost.h"

namespace cohost::scheduler {

// One model's prefill backlog on a device.
struct PrefillQueue {
  int64_t tokens = 0;                     // prompt tokens admitted and not yet computed
  std::optional<runtime::StepCost> cost;  // its steps' cost; nullopt: never measured
  int32_t step_tokens = 512;              // new tokens per step at most
};

// The TTFT of a request of `prompt_tokens` for the model whose backlog is
// `own`, behind `others` (the other models on the device) and `to_ready`
// (the wait before its model runs at all). nullopt when its own model's cost
// has never been measured; another model's unmeasured backlog counts as
// nothing.
std::optional<runtime::Clock::duration> PredictTtft(const PrefillQueue& own,
                                                    absl::Span<const PrefillQueue> others,
                                                    int64_t prompt_tokens,
                                                    runtime::Clock::duration to_ready = {});

// Bounds on the retry pushback a TTFT refusal gives.
inline constexpr std::chrono::milliseconds kMinTtftPushback{100};
inline constexpr std::chrono::milliseconds kMaxTtftPushback{60'000};

struct TtftVerdict {
  bool admit = true;
  // For a refusal: how long until the backlog ahead has drained enough for the
  // target to be met (the prediction less the target, as the queue drains in
  // real time), within [kMinTtftPushback, kMaxTtftPushback].
  std::chrono::milliseconds pushback{0};
};

// Admits unless `predicted` is over `target` by more than `margin_pct`
// percent of it.
TtftVerdict JudgeTtft(runtime::Clock::duration predicted, std::chrono::milliseconds target,
                      int32_t margin_pct);

}  // namespace cohost::scheduler

namespace cohost::scheduler {

// Predicted against actual TTFT over a model's requests, for metrics and
// tests: the predictor's error is a number anyone can read. Thread-safe.
struct TtftPredictionTotals {
  int64_t count = 0;
  double predicted_seconds = 0;  // sums over the requests counted
  double actual_seconds = 0;
  double abs_error_seconds = 0;
};

class TtftPredictionBook {
 public:
  void Record(runtime::Clock::duration predicted, runtime::Clock::duration actual);
  TtftPredictionTotals totals() const;

 private:
  mutable std::mutex mu_;
  TtftPredictionTotals totals_;  // guarded by mu_
};

}  // namespace cohost::scheduler
