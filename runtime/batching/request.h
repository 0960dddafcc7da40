// What callers hand the engine: a tokenized request and a sink that receives its
// output. The server, the CLI and tests all speak these types.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/sampling/logprobs.h"
#include "runtime/sampling/sampling_params.h"

namespace cohost::runtime {

using RequestId = int64_t;
using Clock = std::chrono::steady_clock;

enum class FinishReason : uint8_t {
  kStop,        // end-of-generation token or a stop token id
  kLength,      // max_tokens reached
  kStopString,  // a stop string matched
  kCancelled,   // aborted by the caller, or the sink went away
  kError,       // the engine failed this request (status says why)
};
std::string_view FinishReasonName(FinishReason r);

struct GenerateRequest {
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  std::string tenant;  // salts the prefix cache: tenants never share cached blocks
  // The tenant's share of the engine against other tenants' (FairShare): its
  // tokens count 1 / weight each. > 0.
  double tenant_weight = 1;
  std::string external_id;  // the caller's id, for logs
  // Past it, the request ends with FinishReason::kError and DEADLINE_EXCEEDED,
  // whether queued or running (checked at every step boundary).
  std::optional<Clock::time_point> deadline;
  // When the request reached the server, if earlier than its submission to an
  // engine (it waited for its model to load): queue time and TTFT count from it.
  std::optional<Clock::time_point> arrival;
  // Orders the model's waiting queue: higher first, then by arrival. It never
  // preempts running work, and a preempted sequence keeps its place at the
  // front (StepScheduler::Add).
  int32_t priority = 0;
};

// One step's output for one request: the text that is now safe to show
// (complete UTF-8, no possible stop-string prefix) and the tokens that go
// with it: each sampled token goes out with its text, so while text is held
// back its tokens wait (a delta may carry several, from earlier steps), and
// a stop string's tokens are never sent. A step that releases nothing sends
// no delta.
struct TokenDelta {
  std::vector<int32_t> token_ids;
  std::string text;
  // One per token id when the request asked (SamplingParams::logprobs), else empty.
  std::vector<TokenLogprobs> logprobs;
};

struct RequestTimings {
  double queue_ms = 0;                  // submit -> first scheduled
  double ttft_ms = 0;                   // submit -> first token sampled
  double decode_tokens_per_second = 0;  // tokens after the first over their time
  double e2e_ms = 0;                    // submit -> finish
};

struct FinishInfo {
  FinishReason reason = FinishReason::kStop;
  absl::Status status;  // OK unless reason == kError
  int32_t prompt_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // served from the prefix cache
  int32_t completion_tokens = 0;
  int32_t preemptions = 0;
  RequestTimings timings;
};

// Receives a request's output on the engine thread. Implementations must be
// quick (hand off to another thread for I/O).
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  // The request left the queue and was scheduled for the first time.
  virtual void OnScheduled() {}
  // False means the consumer is gone: the engine aborts the request.
  virtual bool OnDelta(const TokenDelta& delta) = 0;
  // Exactly once, last.
  virtual void OnFinish(const FinishInfo& info) = 0;
  // Before the request is submitted, from whoever admitted it (the Router):
  // the request counts as open (a stream of its tenant's) while anyone
  // holds `open`. A sink whose consumer writes output after OnFinish (a
  // front door's backlog for a slow client) keeps it until that output is
  // written or given up; by default it goes at once, and the request is
  // open until the engine is done with it.
  virtual void KeepOpen(std::shared_ptr<const void> open) { (void)open; }
};

}  // namespace cohost::runtime
