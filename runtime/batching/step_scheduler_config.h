// The step scheduler's limits, apart from the scheduler so that configuration
// (EngineConfig, flags) does not pull in its machinery.
#pragma once

#include <algorithm>
#include <cstdint>

namespace cohost::runtime {

struct StepSchedulerConfig {
  int32_t max_num_seqs = 64;          // sequences per step
  int32_t max_tokens_per_step = 512;  // new tokens per step, all sequences together
  bool chunked_prefill = true;        // false: a prompt is admitted only whole
  int32_t max_prefill_chunk = 512;    // cap of one sequence's tokens in one step
};

// Whether a prompt of `tokens` still to compute is short enough to start
// beside a running prefill in a step of `budget` tokens
// (StepScheduler::ShortPromptReserve): at most half the budget and one
// chunk, with chunked prefill on.
inline bool IsShortPrompt(int64_t tokens, int32_t budget, const StepSchedulerConfig& config) {
  return config.chunked_prefill &&
         tokens <= std::min(budget / 2, std::max(config.max_prefill_chunk, 1));
}

}  // namespace cohost::runtime
