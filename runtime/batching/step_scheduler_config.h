// The step scheduler's limits, apart from the scheduler so that configuration
// (EngineConfig, flags) does not pull in its machinery.
#pragma once

#include <cstdint>

namespace cohost::runtime {

struct StepSchedulerConfig {
  int32_t max_num_seqs = 64;          // sequences per step
  int32_t max_tokens_per_step = 512;  // new tokens per step, all sequences together
  bool chunked_prefill = true;        // false: a prompt is admitted only whole
  int32_t max_prefill_chunk = 512;    // cap of one sequence's tokens in one step
};

}  // namespace cohost::runtime
