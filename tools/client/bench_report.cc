// Renders BenchStats as a table and as JSON.

#include "tools/client/bench_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohost::tools {
namespace {

nlohmann::json SummaryJson(const Summary& s) {
  return {{"count", s.count}, {"mean", s.mean}, {"min", s.min}, {"max", s.max},
          {"p50", s.p50},     {"p90", s.p90},   {"p99", s.p99}};
}

void Row(std::string* out, absl::string_view name, const std::string& value) {
  absl::StrAppendFormat(out, "%-40s %s\n", name, value);
}

void Section(std::string* out, absl::string_view title) {
  std::string line = absl::StrCat("---- ", title, " ");
  if (line.size() < 56) line.resize(56, '-');
  absl::StrAppend(out, line, "\n");
}

// One figure of `s`. An empty sample (nothing succeeded, or no request had
// two tokens) shows n/a: its zeros would read as perfect latency.
std::string Ms(const Summary& s, double v) {
  return s.count > 0 ? absl::StrFormat("%.2f", v) : std::string("n/a");
}

void SummaryRows(std::string* out, absl::string_view name, const Summary& s) {
  for (auto [label, v] :
       {std::pair{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}}) {
    Row(out, absl::StrCat(label, " ", name, " (ms):"), Ms(s, v));
  }
}

}  // namespace

nlohmann::json ReportJson(const nlohmann::json& config, const BenchStats& stats,
                          const GoodputTargets& targets) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, n] : stats.errors) errors[code] = n;
  nlohmann::json goodput_targets = nlohmann::json::object();
  if (targets.ttft_ms) goodput_targets["ttft_ms"] = *targets.ttft_ms;
  if (targets.tpot_ms) goodput_targets["tpot_ms"] = *targets.tpot_ms;
  return {
      {"config", config},
      {"percentile_method", "linear interpolation between closest ranks (numpy default)"},
      {"duration_s", stats.duration_s},
      {"requests",
       {{"issued", stats.issued}, {"completed", stats.completed}, {"failed", stats.failed}}},
      {"errors", errors},
      {"prompt_tokens", stats.prompt_tokens},
      {"output_tokens", stats.output_tokens},
      {"request_throughput", stats.request_throughput},
      {"output_token_throughput", stats.output_throughput},
      {"total_token_throughput", stats.total_token_throughput},
      {"ttft_ms", SummaryJson(stats.ttft_ms)},
      {"tpot_ms", SummaryJson(stats.tpot_ms)},
      {"itl_ms", SummaryJson(stats.itl_ms)},
      {"e2e_ms", SummaryJson(stats.e2e_ms)},
      {"server_ttft_ms", SummaryJson(stats.server_ttft_ms)},
      {"goodput",
       {{"targets", goodput_targets},
        {"good_requests", stats.good_requests},
        {"requests_per_second", stats.goodput}}},
  };
}

std::string ReportTable(const BenchStats& stats, const GoodputTargets& targets) {
  std::string out;
  absl::StrAppend(&out, "============ cohost bench result ============\n");
  Row(&out, "Successful requests:", absl::StrCat(stats.completed));
  Row(&out, "Failed requests:", absl::StrCat(stats.failed));
  for (const auto& [code, n] : stats.errors)
    Row(&out, absl::StrCat("  ", code, ":"), absl::StrCat(n));
  Row(&out, "Duration (s):", absl::StrFormat("%.2f", stats.duration_s));
  Row(&out, "Prompt tokens:", absl::StrCat(stats.prompt_tokens));
  Row(&out, "Output tokens:", absl::StrCat(stats.output_tokens));
  Row(&out, "Request throughput (req/s):", absl::StrFormat("%.2f", stats.request_throughput));
  Row(&out, "Output token throughput (tok/s):", absl::StrFormat("%.2f", stats.output_throughput));
  Row(&out,
      "Total token throughput (tok/s):", absl::StrFormat("%.2f", stats.total_token_throughput));
  if (targets.ttft_ms || targets.tpot_ms) {
    std::string target;
    if (targets.ttft_ms) absl::StrAppendFormat(&target, "TTFT <= %g ms ", *targets.ttft_ms);
    if (targets.tpot_ms) absl::StrAppendFormat(&target, "TPOT <= %g ms", *targets.tpot_ms);
    Row(&out, "Goodput (req/s):",
        absl::StrFormat("%.2f (%d good; %s)", stats.goodput, stats.good_requests, target));
  }
  Section(&out, "Time to first token");
  SummaryRows(&out, "TTFT", stats.ttft_ms);
  Row(&out, "p50 TTFT at the server (ms):", Ms(stats.server_ttft_ms, stats.server_ttft_ms.p50));
  Section(&out, "Time per output token (after the first)");
  SummaryRows(&out, "TPOT", stats.tpot_ms);
  Section(&out, "Inter-token latency");
  SummaryRows(&out, "ITL", stats.itl_ms);
  Section(&out, "End-to-end latency");
  SummaryRows(&out, "E2E", stats.e2e_ms);
  absl::StrAppend(&out, "=============================================\n");
  return out;
}

}  // namespace cohost::tools
