// What the cluster simulator replays: requests with an arrival time, a model,
// and prompt and output lengths; read from the public traces in
// ../shared/traces (Azure 2023, Mooncake) or generated (Poisson or bursty
// Gamma arrivals), and spread over several models by a power-law popularity,
// as MuxServe does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohost::sim {

// Prompt tokens per entry of SimRequest::prefix_blocks (Mooncake's hash_ids).
inline constexpr int32_t kTraceBlockTokens = 512;

struct SimRequest {
  double arrival_s = 0;  // from the workload's start
  int32_t model = 0;
  int32_t prompt_tokens = 1;
  int32_t output_tokens = 1;
  // The prompt's content as a Mooncake trace gives it: entry j names prompt
  // tokens [512 j, 512 (j + 1)), and two requests whose entries agree up to j
  // share those tokens. Empty: the prompt shares nothing.
  std::vector<int64_t> prefix_blocks;
  int32_t tenant = 0;  // who sent it (SimConfig::tenant_weights)
};

// The Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens),
// all for model 0, arrivals relative to the first; at most `max_requests`
// (0: all). Lengths are clamped to [1, max_tokens]. Parsed, and its errors
// worded, as `cohost bench --trace` does (tools/common/azure_trace.h).
absl::StatusOr<std::vector<SimRequest>> LoadAzureCsv(const std::string& path, size_t max_requests,
                                                     int32_t max_tokens);
// A Mooncake trace (JSON lines: timestamp in ms, input_length, output_length,
// and hash_ids, optional: non-negative integers, kept as prefix_blocks).
absl::StatusOr<std::vector<SimRequest>> LoadMooncakeJsonl(const std::string& path,
                                                          size_t max_requests, int32_t max_tokens);

// Popularity of `models` models under a power law: model k's share is
// proportional to (k + 1)^-alpha. Sums to 1.
std::vector<double> PowerLawShares(int32_t models, double alpha);

// Gives each request a model drawn from `shares` (seeded, reproducible); a
// request whose prefix_blocks continue an earlier request's past the first
// block (a later turn of its conversation) gets that request's model.
void AssignModels(std::vector<SimRequest>& requests, const std::vector<double>& shares,
                  uint64_t seed);
// The same for tenants: each request's tenant drawn from `shares`, a later
// turn of a conversation keeping its first turn's.
void AssignTenants(std::vector<SimRequest>& requests, const std::vector<double>& shares,
                   uint64_t seed);

// Per-model arrivals over `duration_s`: model k at total_rate * shares[k]
// requests a second, gaps drawn from a Gamma distribution with coefficient of
// variation `cv` (1: Poisson; above 1: bursty). Every request has the given
// lengths. Sorted by arrival.
std::vector<SimRequest> SyntheticWorkload(const std::vector<double>& shares, double total_rate,
                                          double duration_s, double cv, int32_t prompt_tokens,
                                          int32_t output_tokens, uint64_t seed);

}  // namespace cohost::sim
