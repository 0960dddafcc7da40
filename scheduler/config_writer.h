// A ServeConfig written back as `cohost serve --config` text: what the
// cluster planner (bench/sim, `cohost_sim --plan-config`) writes, one file per
// replica. The format's one reader is model_config_file.h; this is its
// inverse, so ParseServeConfig reads the text back equal.
#pragma once

#include <string>

#include "scheduler/model_config_file.h"

namespace cohost::scheduler {

// YAML: `models:` with every field of each spec that differs from a bare
// `--model NAME=PATH`'s (name and path always), then `tenant_defaults:` and
// `tenants:` when the policy has them.
std::string FormatServeConfig(const ServeConfig& config);

}  // namespace cohost::scheduler
