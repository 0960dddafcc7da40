// Requests of a given number of prompt tokens, for the server's latency tests:
// ordinary vocabulary ids, greedy, ignoring EOS, so that every request costs
// what its sizes say; and the median of a sample of latencies.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "cohost/v1/inference.pb.h"

namespace cohost::testing {

// `prompt_tokens` ids varied so that no prefix is shared within the prompt;
// `first_id` leads it, so that requests with distinct ones share no cached
// prefix either.
inline v1::GenerateRequest TokenRequest(const std::string& model, int prompt_tokens, int max_tokens,
                                        int first_id = 1000) {
  v1::GenerateRequest r;
  r.set_model(model);
  for (int i = 0; i < prompt_tokens; ++i) {
    r.mutable_tokens()->add_ids(i == 0 ? first_id : 1000 + (i * 37) % 20000);
  }
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  return r;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace cohost::testing
