#include "bench/sim/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/common/azure_trace.h"

namespace cohost::sim {
namespace {

int32_t Clamp(int64_t v, int32_t max_tokens) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, 1, max_tokens));
}

void Rebase(std::vector<SimRequest>& requests) {
  std::stable_sort(requests.begin(), requests.end(), [](const SimRequest& a, const SimRequest& b) {
    return a.arrival_s < b.arrival_s;
  });
  if (requests.empty()) return;
  const double t0 = requests.front().arrival_s;
  for (SimRequest& r : requests) r.arrival_s -= t0;
}

// Draws requests' `field` (a model, a tenant) from `shares`; a request whose
// prefix_blocks continue an earlier one's past the first block keeps its.
void AssignByShares(std::vector<SimRequest>& requests, const std::vector<double>& shares,
                    uint64_t seed, int32_t SimRequest::*field) {
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int32_t> pick(shares.begin(), shares.end());
  // The value of the first request that held each trace block.
  absl::flat_hash_map<int64_t, int32_t> owner;
  for (SimRequest& r : requests) {
    size_t known = 0;
    while (known < r.prefix_blocks.size() && owner.contains(r.prefix_blocks[known])) ++known;
    // Past the first block (a service's system prompt, which Mooncake's
    // requests all share) a shared prefix is an earlier turn of the same
    // conversation: it stays with that turn's model and tenant.
    r.*field = known >= 2 ? owner.at(r.prefix_blocks[known - 1]) : pick(rng);
    for (int64_t block : r.prefix_blocks) owner.try_emplace(block, r.*field);
  }
}

}  // namespace

absl::StatusOr<std::vector<SimRequest>> LoadAzureCsv(const std::string& path, size_t max_requests,
                                                     int32_t max_tokens) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  absl::StatusOr<std::vector<tools::TraceRow>> rows = tools::ParseAzureTraceCsv(content);
  if (!rows.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", rows.status().message()));
  }
  std::vector<SimRequest> out;
  for (const tools::TraceRow& row : *rows) {
    if (max_requests != 0 && out.size() >= max_requests) break;
    SimRequest r;
    r.arrival_s = row.arrival_s;
    r.prompt_tokens = Clamp(row.context_tokens, max_tokens);
    r.output_tokens = Clamp(row.generated_tokens, max_tokens);
    out.push_back(r);
  }
  return out;
}

absl::StatusOr<std::vector<SimRequest>> LoadMooncakeJsonl(const std::string& path,
                                                          size_t max_requests, int32_t max_tokens) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string line;
  std::vector<SimRequest> out;
  int64_t line_no = 0;
  while (std::getline(in, line) && (max_requests == 0 || out.size() < max_requests)) {
    ++line_no;
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("timestamp") || !j.contains("input_length") ||
        !j.contains("output_length") || !j["timestamp"].is_number() ||
        !j["input_length"].is_number_integer() || !j["output_length"].is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": not a trace row"));
    }
    SimRequest r;
    r.arrival_s = j["timestamp"].get<double>() / 1000.0;
    r.prompt_tokens = Clamp(j["input_length"].get<int64_t>(), max_tokens);
    r.output_tokens = Clamp(j["output_length"].get<int64_t>(), max_tokens);
    if (j.contains("hash_ids")) {
      const nlohmann::json& ids = j["hash_ids"];
      if (!ids.is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", line_no, ": hash_ids not a list"));
      }
      // Only the blocks the (clamped) prompt reaches matter.
      const size_t used = (static_cast<size_t>(r.prompt_tokens) + kTraceBlockTokens - 1) /
                          static_cast<size_t>(kTraceBlockTokens);
      for (size_t i = 0; i < ids.size() && i < used; ++i) {
        if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ":", line_no, ": hash_ids[", i, "] not a non-negative integer"));
        }
        r.prefix_blocks.push_back(ids[i].get<int64_t>());
      }
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": trace has no rows"));
  Rebase(out);
  return out;
}

std::vector<double> PowerLawShares(int32_t models, double alpha) {
  std::vector<double> shares(static_cast<size_t>(std::max(models, 1)));
  double total = 0;
  for (size_t k = 0; k < shares.size(); ++k) {
    shares[k] = std::pow(static_cast<double>(k + 1), -alpha);
    total += shares[k];
  }
  for (double& s : shares) s /= total;
  return shares;
}

void AssignModels(std::vector<SimRequest>& requests, const std::vector<double>& shares,
                  uint64_t seed) {
  AssignByShares(requests, shares, seed, &SimRequest::model);
}

void AssignTenants(std::vector<SimRequest>& requests, const std::vector<double>& shares,
                   uint64_t seed) {
  AssignByShares(requests, shares, seed, &SimRequest::tenant);
}

std::vector<SimRequest> SyntheticWorkload(const std::vector<double>& shares, double total_rate,
                                          double duration_s, double cv, int32_t prompt_tokens,
                                          int32_t output_tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<SimRequest> out;
  // Gamma gaps with mean 1/rate and coefficient of variation cv: shape 1/cv^2.
  const double shape = 1.0 / std::max(cv * cv, 1e-6);
  for (size_t m = 0; m < shares.size(); ++m) {
    const double rate = total_rate * shares[m];
    if (rate <= 0) continue;
    std::gamma_distribution<double> gap(shape, 1.0 / (rate * shape));
    for (double t = gap(rng); t < duration_s; t += gap(rng)) {
      SimRequest r;
      r.arrival_s = t;
      r.model = static_cast<int32_t>(m);
      r.prompt_tokens = prompt_tokens;
      r.output_tokens = output_tokens;
      out.push_back(std::move(r));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const SimRequest& a, const SimRequest& b) {
    return a.arrival_s < b.arrival_s;
  });
  return out;
}

}  // namespace cohost::sim
