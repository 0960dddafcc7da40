// The one rule for tenant names, which clients claim (a header, OpenAI's
// `user`) and operators write in key and configuration files: at most 256
// bytes of well-formed UTF-8 without control characters, so that a name is
// safe as a metrics label (Prometheus refuses a whole scrape over one label
// that is not UTF-8) and in logs; not "(none)" or "(other)", the metrics'
// own labels for no tenant and for tenants past the label bound. Whether a
// name may be empty is the caller's to say.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/utf8.h"

namespace cohost {

inline constexpr size_t kMaxTenantNameBytes = 256;
inline constexpr std::string_view kNoTenantLabel = "(none)";
inline constexpr std::string_view kOtherTenantsLabel = "(other)";

// INVALID_ARGUMENT saying what is wrong (never quoting the name).
inline absl::Status ValidateTenantName(std::string_view name) {
  if (name.size() > kMaxTenantNameBytes) {
    return absl::InvalidArgumentError("a tenant name is at most " +
                                      std::to_string(kMaxTenantNameBytes) + " bytes, got " +
                                      std::to_string(name.size()));
  }
  if (name == kNoTenantLabel || name == kOtherTenantsLabel) {
    return absl::InvalidArgumentError(
        "\"(none)\" and \"(other)\" are the metrics' own tenant labels");
  }
  const auto bad = [] {
    return absl::InvalidArgumentError("a tenant name must be UTF-8 without control characters");
  };
  for (size_t i = 0; i < name.size();) {
    uint32_t cp = 0;
    const size_t length = DecodeUtf8(name, i, &cp);
    // Well-formed, and no C0 or C1 control or DEL.
    if (length == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return bad();
    i += length;
  }
  return absl::OkStatus();
}

}  // namespace cohost
