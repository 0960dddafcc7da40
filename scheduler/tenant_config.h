// The tenants' part of a `cohost serve --config` file (scheduler-internal;
// called by model_config_file.cc under its one try):
//   tenant_defaults:                  # optional: every tenant not listed
//     max_streams: 32
//   tenants:                          # optional list
//     - name: alice                   # non-empty, at most 256 bytes, no control bytes
//       weight: 2                     # its share of a busy model's tokens: a number
//                                     # above 0, at most 1000 (default 1)
//       tokens_per_minute: 100000     # prompt + generated; integer >= 0, 0: no limit
//       max_streams: 16               # requests in flight; integer >= 0, 0: no limit
//       max_queued_prompt_tokens: 50000  # not yet scheduled; integer >= 0, 0: no limit
// A listed tenant starts from tenant_defaults. Errors read
// `FILE:LINE: FIELD.PATH: what`, as the models' do.
#pragma once

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"
#include "scheduler/config_yaml.h"
#include "scheduler/tenants.h"

namespace cohost::scheduler {

inline constexpr double kMaxTenantWeight = 1000;
// Fair-share counters divide tokens by the weight: one near the smallest
// doubles makes them infinite, and then every tenant's equal.
inline constexpr double kMinTenantWeight = 1e-6;
inline constexpr int64_t kMaxTenantBudget = int64_t{1} << 50;
inline constexpr int64_t kMaxTenantPriority = 1'000'000;

// `defaults` and `tenants` are the sections' nodes; a line of -1 means the
// section is absent.
absl::StatusOr<TenantPolicy> ParseTenantSections(const config_yaml::YamlReader& reader,
                                                 const YAML::Node& defaults, int defaults_line,
                                                 const YAML::Node& tenants, int tenants_line);

}  // namespace cohost::scheduler
