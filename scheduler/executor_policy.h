// Which engine a device executor steps next, and how many new tokens that step
// may take: pure functions of what each engine reports, so the policy is tested
// as tables (tests/scheduler/executor_policy_test.cc).
//
// The rule (docs/architecture.md, "One executor per device"): requests waiting
// for their first token come first, earliest TTFT deadline (submit time plus the
// model's TTFT target) first; a deadline already missed ranks behind every one
// that can still be met, so a flooded model cannot hold the device with
// requests it has failed anyway. Among the rest (decoding models, and late
// first tokens), the earliest next-token deadline goes next: the end of the
// engine's last step plus its model's TPOT target (never stepped: first), so
// a model with a tight TPOT target is stepped more often than one with a
// loose target; with equal targets this is round robin.
//
// One exception bounds a model's wait behind another model's steady backlog
// of first tokens: a model is starved when its next step is due more than
// kStarvedTargets of its TPOT target ago, and a starved model goes first,
// unless the step before was such a promotion over an on-time first token.
// A decode's next step is due one TPOT target after its last step; a first
// token past its TTFT deadline (and no decode) one TPOT target after that
// deadline or the engine's last step, whichever is later, so that a late
// prompt is not stranded behind another model's on-time ones (nor are its
// deadline checks, which run in its steps). The two alternate, so neither
// can starve the other: a first token waits at most one starved step per step
// of its own, and a starved model at most one first-token step.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "runtime/batching/request.h"

namespace cohost::scheduler {

using runtime::Clock;

struct EngineCandidate {
  bool has_work = false;
  // Earliest submit time among requests without a first token, if any.
  std::optional<Clock::time_point> oldest_awaiting_first;
  Clock::duration ttft_target = std::chrono::seconds(1);
  Clock::duration tpot_target = std::chrono::milliseconds(200);
  // When its last step ended; nullopt: never stepped.
  std::optional<Clock::time_point> last_step_end;
  // Rounds since the engine was last stepped are compared through this
  // counter: smaller means stepped longer ago (never stepped: 0).
  int64_t last_stepped = 0;
  // Some stream has its first token and waits for its next one.
  bool decoding = false;
};

inline constexpr int kStarvedTargets = 4;

struct EnginePick {
  size_t index = 0;
  // A starved model went ahead of a first token still on time; the next
  // pick on this device passes `after_promotion` then.
  bool promoted = false;
};

// The engine to step, or nullopt when none has work. `after_promotion`: the
// device's last pick was `promoted`, so no starved model goes first now.
std::optional<EnginePick> PickNextEngine(absl::Span<const EngineCandidate> engines,
                                         Clock::time_point now, bool after_promotion = false);

// Whether the step of engines[pick] is capped to a time slice (SliceTokens)
// while several engines share the device. A step that serves a first token
// still on time, while no other engine has one, runs whole: the policy would
// pick that engine again at every boundary anyway, so cutting its prefill into
// slices only adds each step's fixed cost to its TTFT. Every other step is
// capped, so that a first token arriving meanwhile waits at most one slice.
bool SliceThisStep(absl::Span<const EngineCandidate> engines, size_t pick, Clock::time_point now);

// New tokens a step may take so that it lasts about `slice` at the engine's
// measured rate (tokens per second; <= 0 when not measured yet, then
// `unmeasured_tokens`). Never below `min_tokens`, never 0.
int32_t SliceTokens(double tokens_per_second, Clock::duration slice, int32_t min_tokens,
                    int32_t unmeasured_tokens);

// How a device sizes its steps in time.
struct StepSlicing {
  Clock::duration slice{};         // between engines, when SliceThisStep; 0: never
  int32_t min_tokens = 16;         // a step may always take this many new tokens
  int32_t unmeasured_tokens = 64;  // before an engine's rate is known
};

// The new tokens the step of engines[pick] may take (0: no cap), at the
// engine's measured rate (SliceTokens), the smaller of:
//  - a step of about `slicing.slice`, while several engines share the device
//    and SliceThisStep says so;
//  - a step of about its model's TPOT target, while it has streams decoding: a
//    longer step holds each of their next tokens past that target. This is
//    Sarathi-Serve's token budget, set in time rather than tokens; it also
//    bounds how long a request arriving meanwhile (another tenant's, on the
//    same model) waits behind the step already running.
int32_t StepTokenCap(absl::Span<const EngineCandidate> engines, size_t pick, Clock::time_point now,
                     const StepSlicing& slicing, double tokens_per_second);

}  // namespace cohost::scheduler
