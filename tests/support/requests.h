// Greedy requests for the tests that only need some prompt to run: random
// token ids below 256 (every tiny test vocabulary has them), no stop at EOS.
#pragma once

#include <cstdint>
#include <random>

#include "runtime/batching/request.h"

namespace cohost::testing {

inline runtime::GenerateRequest RandomGreedyRequest(int32_t prompt_len, int32_t max_tokens,
                                                    uint32_t seed) {
  runtime::GenerateRequest r;
  std::mt19937 rng(seed);
  for (int32_t i = 0; i < prompt_len; ++i) {
    r.prompt_ids.push_back(static_cast<int32_t>(rng() % 256));
  }
  r.sampling.temperature = 0;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

}  // namespace cohost::testing
