// The one rule for tenant names, which clients claim (a header, OpenAI's
// `user`) and operators write in key and configuration files: at most 256
// bytes of well-formed UTF-8 without control characters, so that a name is
// safe as a metrics label (Prometheus refuses a whole scrape over one label
// that is not UTF-8) and in logs; not "(none)" or "(other)", the metrics'
// own labels for no tenant and for tenants past the label bound. Whether a
// name may be empty is the caller's to say.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

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
    const auto b = static_cast<unsigned char>(name[i]);
    if (b < 0x80) {
      if (b < 0x20 || b == 0x7f) return bad();
      ++i;
      continue;
    }
    // Well-formed sequences (Unicode's table 3-7): no overlong forms, no
    // surrogates, nothing past U+10FFFF, no C1 controls.
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      len = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b == 0xe0) lo = 0xa0;
      if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b == 0xf0) lo = 0x90;
      if (b == 0xf4) hi = 0x8f;
    } else {
      return bad();
    }
    if (i + len > name.size()) return bad();
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(name[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf)) return bad();
    }
    if (b == 0xc2 && static_cast<unsigned char>(name[i + 1]) < 0xa0) return bad();  // C1
    i += len;
  }
  return absl::OkStatus();
}

}  // namespace cohost
