// The output of `cohost bench`: a text table for the terminal and a JSON
// document (the run's config, counts, errors by status code, latency summaries
// in milliseconds, throughputs per second, goodput).
#pragma once

#include <string>

#include "nlohmann/json.hpp"
#include "tools/client/load_gen.h"

namespace cohost::tools {

// `config` is stored as given under "config" (flags, model, server).
nlohmann::json ReportJson(const nlohmann::json& config, const BenchStats& stats,
                          const GoodputTargets& targets);

std::string ReportTable(const BenchStats& stats, const GoodputTargets& targets);

}  // namespace cohost::tools
