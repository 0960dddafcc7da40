// The Azure LLM inference trace (Azure 2023: TIMESTAMP,ContextTokens,
// GeneratedTokens), as `cohost bench --trace` replays it and the cluster
// simulator (bench/sim) sizes a fleet for it: one parser for both.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cohost::tools {

// One row, with the timestamp as seconds since the first row.
struct TraceRow {
  double arrival_s = 0;
  int32_t context_tokens = 0;
  int32_t generated_tokens = 0;
};
// Rows in file order; timestamps "YYYY-MM-DD HH:MM:SS[.fraction]" (a trace may
// cross midnight or a month's end). INVALID_ARGUMENT naming the line for a bad
// header, field or timestamp, or time going backwards.
absl::StatusOr<std::vector<TraceRow>> ParseAzureTraceCsv(std::string_view content);

}  // namespace cohost::tools
