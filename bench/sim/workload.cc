#include "bench/sim/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace cohost::sim {
namespace {

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "2023-11-16 18:17:03.9799600" -> seconds since the epoch.
bool ParseTimestamp(const std::string& s, double* seconds) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double sec = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%d %d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6) return false;
  *seconds = static_cast<double>(DaysFromCivil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
  return true;
}

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

}  // namespace

absl::StatusOr<std::vector<SimRequest>> LoadAzureCsv(const std::string& path, size_t max_requests,
                                                     int32_t max_tokens) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string line;
  std::getline(in, line);  // header
  std::vector<SimRequest> out;
  int64_t line_no = 1;
  while (std::getline(in, line) && (max_requests == 0 || out.size() < max_requests)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, ',');
    SimRequest r;
    int64_t in_tokens = 0, out_tokens = 0;
    if (f.size() != 3 || !ParseTimestamp(f[0], &r.arrival_s) ||
        !absl::SimpleAtoi(f[1], &in_tokens) || !absl::SimpleAtoi(f[2], &out_tokens)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": not a trace row"));
    }
    r.prompt_tokens = Clamp(in_tokens, max_tokens);
    r.output_tokens = Clamp(out_tokens, max_tokens);
    out.push_back(r);
  }
  Rebase(out);
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
    out.push_back(r);
  }
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
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int32_t> pick(shares.begin(), shares.end());
  for (SimRequest& r : requests) r.model = pick(rng);
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
      out.push_back({t, static_cast<int32_t>(m), prompt_tokens, output_tokens});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const SimRequest& a, const SimRequest& b) {
    return a.arrival_s < b.arrival_s;
  });
  return out;
}

}  // namespace cohost::sim
