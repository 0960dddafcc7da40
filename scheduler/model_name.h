// The one rule for model names, which clients send in every request and
// operators write in flags and configuration files: 1-128 characters of
// [A-Za-z0-9._-], so a name is safe in metrics labels, logs and paths.
#pragma once

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace cohost::scheduler {

inline constexpr size_t kMaxModelNameLength = 128;

// INVALID_ARGUMENT saying what is wrong (a bad name is quoted escaped).
absl::Status ValidateModelName(std::string_view name);

}  // namespace cohost::scheduler
