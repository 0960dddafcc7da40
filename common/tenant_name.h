// The one rule for tenant names, which clients claim in a header and
// operators write in key and configuration files: at most 256 bytes of
// printable ASCII, so that a name is safe as a metrics label (Prometheus
// refuses a whole scrape over one label that is not UTF-8) and in logs.
// Whether a name may be empty is the caller's to say.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cohost {

inline constexpr size_t kMaxTenantNameBytes = 256;

// INVALID_ARGUMENT saying what is wrong (never quoting the name).
inline absl::Status ValidateTenantName(std::string_view name) {
  if (name.size() > kMaxTenantNameBytes) {
    return absl::InvalidArgumentError("a tenant name is at most " +
                                      std::to_string(kMaxTenantNameBytes) + " bytes, got " +
                                      std::to_string(name.size()));
  }
  for (char c : name) {
    if (c < ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "a tenant name may hold only printable ASCII (no control bytes, nothing past 0x7e)");
    }
  }
  return absl::OkStatus();
}

}  // namespace cohost
